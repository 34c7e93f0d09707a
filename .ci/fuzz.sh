#!/usr/bin/env bash
# API fuzzing: schemathesis generates requests from the served /openapi.json and checks every
# answer: no 5xx, status codes, content types, headers and bodies as documented, no hang.
# Bounded: a fixed number of examples per operation and a timeout on everything.
#
#   FUZZ_EXAMPLES=200   examples per operation and phase
#   FUZZ_SEED=1         hypothesis seed (a fixed one keeps CI reproducible; FUZZ_SEED=random
#                       explores new inputs)
#   FUZZ_VENV=DIR       where schemathesis is installed (default: the cargo target dir)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${FUZZ_EXAMPLES:-200}
SEED=${FUZZ_SEED:-1}

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
venv=${FUZZ_VENV:-$target_dir/fuzz-venv}

echo "== schemathesis $SCHEMATHESIS_VERSION in $venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

echo "== building the server"
cargo build --quiet --bin appmixer-auth
bin=$target_dir/debug/appmixer-auth

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# One fixture admin, so the administration routes are fuzzed past their scope check.
admin_password=fuzz-admin-$RANDOM$RANDOM
cat >"$work/appmixer.toml" <<EOF
[[users]]
username = "fuzz-admin@example.com"
email = "fuzz-admin@example.com"
password = "$admin_password"
scope = ["user", "admin"]
isActive = true
EOF

# Only the settings named here: nothing from the caller's environment.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^APPMIXER_' || true)
unset API_USER_CREATE_SCOPE GRIDD_JWT_TOKEN_EXP HTTP_API_PORT
export RUST_LOG=warn APPMIXER_AUTH__BCRYPT_COST=4 APPMIXER_AUTH__MAX_FAILED_ATTEMPTS=0
# A password change or reset of the admin (which the fuzzer makes) would revoke the one token
# every request carries; the revocation routes themselves run apart, below.
export APPMIXER_AUTH__REVOKE_ON_PASSWORD_CHANGE=false

url=
token=
# Starts a fresh server (an empty database in memory, the fixture admin) and signs in.
start_server() {
    # Emptied here, not by the redirection below: that one runs in the background child, and
    # until it does the loop could read the previous server's address.
    : >"$work/stdout"
    "$bin" --config "$work/appmixer.toml" --port 0 --db :memory: >"$work/stdout" 2>>"$work/server.log" &
    server_pid=$!
    url=
    for _ in $(seq 300); do
        url=$(sed -n 's/^listening on //p' "$work/stdout")
        [ -n "$url" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$url" ]; then
        echo "fuzz.sh: the server did not start" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    token=$(curl -sf -XPOST "$url/user/auth" -H 'Content-Type: application/json' \
        -d "{\"username\": \"fuzz-admin@example.com\", \"password\": \"$admin_password\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
}

# Whatever was thrown at it, the server is still up and answering; then it stops.
stop_server() {
    local ok=0
    if ! curl -sf --max-time 5 "$url/" >/dev/null; then
        echo "fuzz.sh: the server stopped answering after the fuzzing" >&2
        ok=1
    fi
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    return $ok
}

# One worker: with several threads, CPython 3.11's ast.parse (used by hypothesis) can fail
# with "AST constructor recursion depth mismatch", a tool error rather than a finding.
# Every check except positive_data_acceptance: the schema cannot say "at most 72 bytes" (JSON
# Schema counts characters), so a 72-character password of multi-byte characters is valid
# to the document and rightly refused by the server.
fuzz() {
    local phases=$1
    shift
    # From the temporary directory, so hypothesis's example database stays out of the tree.
    # The served document, less the routes that exist only when turned on (the fixture API
    # and /metrics are off here, so every method on them is a 404, which schemathesis would
    # rightly call a wrong answer to a method the document does not list).
    # Also less the paths matching $drop (schemathesis ANDs its own exclude filters, so a
    # method filter and a path filter cannot both apply).
    curl -sf "$url/openapi.json" | DROP="${drop:-^$}" python3 -c '
import json, os, re, sys
doc = json.load(sys.stdin)
drop = re.compile(os.environ["DROP"])
doc["paths"] = {p: v for p, v in doc["paths"].items()
                if not (p.startswith("/_fixtures/") or p == "/metrics" or drop.search(p))}
json.dump(doc, sys.stdout)' >"$work/openapi.json"
    (cd "$work" && timeout --kill-after=10 300 "$venv/bin/schemathesis" run "$work/openapi.json" \
        --url "$url" \
        --phases "$phases" \
        "$@" \
        --checks all \
        --exclude-checks positive_data_acceptance \
        --max-examples "$EXAMPLES" \
        --request-timeout 10 \
        --workers 1 \
        --header "Authorization: Bearer $token" \
        --output-sanitize false \
        --no-color \
        $([ "$SEED" = random ] || echo "--seed $SEED"))
}

# Four runs, each on a fresh server. Schemathesis learns ids from responses (GET /users lists
# the admin), and PUT or DELETE on the admin's own id takes its scope away or deletes it, as
# they should; after that every admin route is a 403 or 404 and fuzzes nothing. So the
# routes that can do that run apart from the others, and the stateful phase runs last.
status=0
run() {
    echo "== schemathesis ($*): $EXAMPLES examples per operation, seed $SEED"
    start_server
    fuzz "$@" || status=$?
    stop_server || status=1
}
# Signing out everywhere revokes the token the fuzzer carries (after the first success every
# route is a 401, as it should be): those routes run alone, third.
drop=revoke-tokens run examples,coverage,fuzzing --exclude-method-regex '^(PUT|DELETE)$'
run examples,coverage,fuzzing --include-method-regex '^(PUT|DELETE)$'
run examples,coverage,fuzzing --include-path-regex 'revoke-tokens'
drop=revoke-tokens run stateful
if grep -E 'panicked|ERROR appmixer_auth' "$work/server.log" >&2; then
    echo "fuzz.sh: the server logged a panic or an internal error (above)" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: failed (exit $status); the server's log ends with:" >&2
    tail -n 40 "$work/server.log" >&2
fi
exit "$status"
