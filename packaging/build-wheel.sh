#!/usr/bin/env bash
# Builds the Python wheel: the release binary (maturin, `bindings = "bin"`), the appmixer_auth
# module and its pytest plugin, from packaging/python. Run from anywhere; the last line printed
# is the wheel's path, target/packaging/wheels/appmixer_auth-VERSION-py3-none-TAG.whl. Installs
# maturin into a virtualenv under target/ when it is not on the PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/packaging"

maturin="$(command -v maturin || true)"
if [ -z "$maturin" ]; then
    tools="$out/tools"
    if [ ! -x "$tools/bin/maturin" ]; then
        echo "== installing maturin into $tools" >&2
        python3 -m venv "$tools"
        "$tools/bin/pip" install -q --disable-pip-version-check 'maturin>=1.9,<2' >&2
    fi
    maturin="$tools/bin/maturin"
fi

rm -f "$out"/wheels/appmixer_auth-*.whl
# maturin reads packaging/python/pyproject.toml from the directory it runs in; cargo's output
# goes to the repository's target/, where `cargo build --release` finds it too.
(cd "$root/packaging/python" && "$maturin" build --release --out "$out/wheels") >&2
wheels=("$out"/wheels/appmixer_auth-*.whl)
[ "${#wheels[@]}" = 1 ] && [ -f "${wheels[0]}" ] || { echo "build-wheel.sh: no single wheel in $out/wheels" >&2; exit 1; }
echo "${wheels[0]}"
