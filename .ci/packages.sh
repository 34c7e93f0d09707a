#!/usr/bin/env bash
# CI: builds the three installs without Rust (Python wheel, npm tarball, Debian package) from one
# release build, and tests each the way its user would install it. Run from anywhere, as root
# for the .deb (it installs and purges it on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
tmp="$(mktemp -d)"
server_pid=""
deb_installed_here=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    if [ -n "$deb_installed_here" ]; then dpkg --purge appmixer-auth >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "packages: $*" >&2
    exit 1
}
size() { du -h "$1" | cut -f1; }

# ---------------------------------------------------------------------------------------------
# The wheel: maturin's release build is the one the other two artifacts reuse.
t=$SECONDS
echo "== packages: wheel (packaging/build-wheel.sh)"
wheel="$(packaging/build-wheel.sh | tail -n 1)"
echo "built $wheel ($(size "$wheel")) in $((SECONDS - t)) s"

t=$SECONDS
echo "== packages: the wheel in a fresh virtualenv, examples/python and its own tests against it"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "$wheel" -r examples/python/requirements.txt
# The suite is copied out of the repository, so neither the repository's packaging/python nor
# its target/ can stand in for what the wheel installed.
cp -r examples/python "$tmp/python-example"
cp -r packaging/python/tests "$tmp/python-tests"
found="$(cd "$tmp" && "$tmp/venv/bin/python" -c 'import appmixer_auth as a; print(a.__file__); print(a.binary_path())')"
case "$found" in
    "$tmp/venv/"*"/appmixer_auth/__init__.py"$'\n'"$tmp/venv/bin/appmixer-auth") ;;
    *) fail "the venv's appmixer_auth is not the wheel's: $found" ;;
esac
"$tmp/venv/bin/appmixer-auth" --version
(cd "$tmp" && env -u APPMIXER_AUTH_BIN "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider python-example python-tests)
echo "wheel tested in $((SECONDS - t)) s"

# ---------------------------------------------------------------------------------------------
t=$SECONDS
echo "== packages: npm (packaging/build-npm.sh)"
tgz="$(packaging/build-npm.sh | tail -n 1)"
echo "built $tgz ($(size "$tgz")) in $((SECONDS - t)) s"

t=$SECONDS
echo "== packages: the tarball in a fresh project, examples/node and its own tests, its types"
project="$tmp/node-project"
mkdir -p "$project"
cp examples/node/package.json examples/node/*.mjs packaging/npm/test/*.test.mjs "$project/"
(
    cd "$project"
    npm install --no-audit --no-fund --loglevel=error "$tgz" typescript@5
    [ -x node_modules/appmixer-auth/bin/appmixer-auth ] || fail "the package's binary is not executable"
    npx --no-install appmixer-auth --version
    node --input-type=module -e "
        import { binary } from './appmixer-auth.mjs';
        if (!binary.startsWith(process.cwd() + '/node_modules/appmixer-auth/')) {
            console.error('examples/node runs ' + binary + ', not the package');
            process.exit(1);
        }"
    env -u APPMIXER_AUTH_BIN npm test --silent
    # The types: what a TypeScript suite writes compiles, and a user without an email does not.
    cat > check.ts <<'TS'
import { startServer, binary, type Server, type StartOptions } from 'appmixer-auth';
const options: StartOptions = {
  users: [{ username: 'ts', email: 'ts@example.com', password: 'ts-pass', scope: ['user'] }],
  env: { APPMIXER_AUTH__TOKEN_EXPIRATION: '1h' },
  timeout: 5000,
};
const server: Server = await startServer(options);
const url: string = server.url;
await server.reset();
await server.stop();
// @ts-expect-error a declared user needs an email
await startServer({ users: [{ username: 'no-email' }] });
export const checked: [string, string] = [binary, url];
TS
    npx --no-install tsc --noEmit --strict --target es2022 --module nodenext --moduleResolution nodenext check.ts
)
echo "npm package tested in $((SECONDS - t)) s"

# ---------------------------------------------------------------------------------------------
t=$SECONDS
echo "== packages: Debian (packaging/build-deb.sh)"
deb="$(packaging/build-deb.sh | tail -n 1)"
echo "built $deb ($(size "$deb")) in $((SECONDS - t)) s"
dpkg-deb --info "$deb" | sed -n 's/^ \(Depends\|Installed-Size\):/  \1:/p'

if [ "$(id -u)" != 0 ]; then
    [ "${CI:-}" != true ] || fail "the .deb test installs a package: run as root"
    echo "not root: the .deb is built but not installed"
    exit 0
fi
if dpkg-query -W -f='${Status}' appmixer-auth 2>/dev/null | grep -qv 'not-installed'; then
    # Installing and purging would take away someone's install; on CI the machine is ours.
    [ "${CI:-}" = true ] || fail "appmixer-auth is installed here; the .deb test would purge it (dpkg --purge appmixer-auth first)"
    dpkg --purge appmixer-auth
fi

t=$SECONDS
echo "== packages: dpkg -i, files and modes, the server as the system user"
deb_installed_here=1
dpkg -i "$deb"
expect_stat() { # PATH "MODE OWNER:GROUP"
    local got
    got="$(stat -c '%a %U:%G' "$1")"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}
expect_stat /usr/bin/appmixer-auth "755 root:root"
expect_stat /etc/appmixer-auth "755 root:root"
expect_stat /etc/appmixer-auth/appmixer.toml "640 root:appmixer-auth"
expect_stat /usr/lib/systemd/system/appmixer-auth.service "644 root:root"
expect_stat /var/lib/appmixer-auth "700 appmixer-auth:appmixer-auth"
dpkg-query -W -f='${Conffiles}\n' appmixer-auth | grep -q '^ /etc/appmixer-auth/appmixer.toml ' \
    || fail "appmixer.toml is not a conffile"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd appmixer-auth)
[ "$uid" -lt 1000 ] && [ "$home" = /var/lib/appmixer-auth ] && [ "$shell" = /usr/sbin/nologin ] \
    || fail "appmixer-auth is not a system user without a login: uid $uid, home $home, shell $shell"
grep -qx 'path = "/var/lib/appmixer-auth/appmixer.db"' /etc/appmixer-auth/appmixer.toml \
    || fail "the installed settings do not put the database in /var/lib/appmixer-auth"
if command -v systemd-analyze >/dev/null; then
    out="$(systemd-analyze verify /usr/lib/systemd/system/appmixer-auth.service 2>&1 || true)"
    if printf '%s\n' "$out" | grep 'appmixer-auth.service'; then fail "the installed unit does not verify"; fi
    echo "installed unit verified"
fi

# As the unit runs it (its user, its working directory, APPMIXER_CONFIG), on a free port.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_service=(env -i -C /var/lib/appmixer-auth PATH=/usr/sbin:/usr/bin:/sbin:/bin
    APPMIXER_CONFIG=/etc/appmixer-auth/appmixer.toml APPMIXER_SERVER__PORT="$port"
    /usr/bin/setpriv --reuid=appmixer-auth --regid=appmixer-auth --init-groups)
as_service() { "${as_service[@]}" "$@"; }
start_service() {
    # env and setpriv exec the server, so $! is the server's own process.
    "${as_service[@]}" /usr/bin/appmixer-auth serve >"$tmp/serve.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        if as_service /usr/bin/appmixer-auth healthcheck >/dev/null 2>&1; then
            echo "appmixer-auth healthcheck: the server answers as $(ps -o user= -p "$server_pid")"
            return 0
        fi
        sleep 0.2
    done
    cat "$tmp/serve.log" >&2
    fail "the installed server did not answer appmixer-auth healthcheck"
}
stop_service() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}
sign_in() { # USERNAME PASSWORD: prints the HTTP status
    python3 - "$port" "$1" "$2" <<'PY'
import json, sys, urllib.error, urllib.request
port, username, password = sys.argv[1:]
req = urllib.request.Request(f"http://127.0.0.1:{port}/user/auth", method="POST",
    data=json.dumps({"username": username, "password": password}).encode(),
    headers={"Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as err:
    print(err.code)
PY
}
start_service
[ "$(ps -o user= -p "$server_pid")" = appmixer-auth ] || fail "the server does not run as appmixer-auth"
as_service /usr/bin/appmixer-auth users add deb-user --email deb@example.com --password deb-pass
[ "$(sign_in deb-user deb-pass)" = 200 ] || fail "deb-user cannot sign in"
expect_stat /var/lib/appmixer-auth/appmixer.db "600 appmixer-auth:appmixer-auth"
stop_service

echo "== packages: dpkg -r keeps the database and settings; a new install uses them"
dpkg -r appmixer-auth
[ ! -e /usr/bin/appmixer-auth ] || fail "dpkg -r left /usr/bin/appmixer-auth"
[ ! -e /usr/lib/systemd/system/appmixer-auth.service ] || fail "dpkg -r left the unit"
[ -s /var/lib/appmixer-auth/appmixer.db ] || fail "dpkg -r removed the database"
[ -f /etc/appmixer-auth/appmixer.toml ] || fail "dpkg -r removed the settings file"
dpkg -i "$deb"
start_service
[ "$(sign_in deb-user deb-pass)" = 200 ] || fail "deb-user is gone after dpkg -r and dpkg -i"
stop_service

echo "== packages: dpkg --purge removes the database and settings"
dpkg --purge appmixer-auth
deb_installed_here=""
for gone in /usr/bin/appmixer-auth /var/lib/appmixer-auth /etc/appmixer-auth \
    /etc/systemd/system/multi-user.target.wants/appmixer-auth.service; do
    [ ! -e "$gone" ] && [ ! -L "$gone" ] || fail "dpkg --purge left $gone"
done
echo "Debian package tested in $((SECONDS - t)) s"
