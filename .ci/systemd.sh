#!/usr/bin/env bash
# Checks packaging/appmixer-auth.service with systemd-analyze, where that runs. The unit names
# /usr/local/bin/appmixer-auth; the check points it at the freshly built binary instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not found: unit not verified"
  exit 0
fi
bin="$(pwd)/target/debug/appmixer-auth"
[ -x "$bin" ] || cargo build -q
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/appmixer-auth#$bin#g" packaging/appmixer-auth.service > "$tmp/appmixer-auth.service"
out="$(systemd-analyze verify "$tmp/appmixer-auth.service" 2>&1 || true)"
# Complaints about the host's own units (not ours) are not our business.
ours="$(printf '%s\n' "$out" | grep 'appmixer-auth.service' || true)"
if [ -n "$ours" ]; then
  printf '%s\n' "$ours"
  exit 1
fi
echo "systemd unit verified"
