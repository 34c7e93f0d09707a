#!/usr/bin/env bash
# Builds the npm package `appmixer-auth` (linux-x64): the release binary plus packaging/npm's
# startServer() and its types, packed by `npm pack`. Run from anywhere; the last line printed is
# the tarball's path, target/packaging/appmixer-auth-VERSION.tgz.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/packaging"
cd "$root"

cargo build --release --locked --bin appmixer-auth >&2
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"

stage="$out/npm/appmixer-auth"
rm -rf "$stage" "$out/appmixer-auth-$version.tgz"
mkdir -p "$stage/bin"
cp packaging/npm/package.json packaging/npm/index.mjs packaging/npm/index.d.ts packaging/npm/README.md "$stage/"
install -m 0755 target/release/appmixer-auth "$stage/bin/appmixer-auth"
# The version is Cargo.toml's, as the wheel's and the .deb's are.
(cd "$stage" && npm pkg set "version=$version" && npm pack --silent --pack-destination "$out") >&2
[ -f "$out/appmixer-auth-$version.tgz" ] || { echo "build-npm.sh: npm pack made no $out/appmixer-auth-$version.tgz" >&2; exit 1; }
echo "$out/appmixer-auth-$version.tgz"
