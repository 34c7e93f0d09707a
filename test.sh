#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")"

# The browser tests (tests/browser) drive headless Chromium through chromedriver: Debian's
# packages, installed once. Without them the tests skip, except under CI, where they fail.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing chromium and chromium-driver"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "test.sh: chromium or chromedriver is missing; install both to run the browser tests" >&2
    fi
fi

# PostgreSQL (database.url): Debian's server for a throwaway cluster the tests start and stop
# themselves (tests/support/pg-cluster.sh); the package's own cluster and service are not made.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing postgresql"
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "test.sh: PostgreSQL is not installed; its runs of the suites are skipped" >&2
    fi
fi

# Every suite on SQLite; tests/replicas waits for the PostgreSQL run below.
TEST_POSTGRES_LATER=1 cargo test

# The API and command suites again, on PostgreSQL (one schema per test), then several replicas
# on one database: shared state, and faults (this run stops and starts the cluster, so alone).
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    pgdir=$(mktemp -d /tmp/appmixer-pg.XXXXXX)
    trap 'tests/support/pg-cluster.sh stop "$pgdir"' EXIT
    pgurl=$(tests/support/pg-cluster.sh start "$pgdir")
    echo "== the API and command suites on PostgreSQL ($pgurl)"
    TEST_POSTGRES_URL=$pgurl cargo test --test api --test cli
    echo "== replicas on one PostgreSQL (tests/replicas)"
    TEST_POSTGRES_URL=$pgurl TEST_POSTGRES_DIR=$pgdir cargo test --test replicas -- --test-threads=1
elif [ -n "${CI:-}" ]; then
    echo "test.sh: CI needs PostgreSQL for the replica tests" >&2
    exit 1
fi

# The example suites of "Use it in your test suite", against the binary cargo test just built.
echo "== examples/node (node:test)"
(cd examples/node && npm test --silent)
echo "== examples/python (pytest)"
python3 -m pip install -q -r examples/python/requirements.txt
python3 -m pytest -q examples/python

# Every console example of README.md and docs/, run in order on one fresh server.
echo "== documented examples (tests/docs)"
python3 -m pytest -q -p no:cacheprovider tests/docs

# Users moving in with the hashes of other systems, made by independent implementations;
# forgot-password mail received by another SMTP implementation (aiosmtpd).
echo "== foreign password hashes and SMTP mail (tests/hashes, tests/mail)"
python3 -m pip install -q argon2-cffi aiosmtpd
python3 -m pytest -q -p no:cacheprovider tests/hashes tests/mail

# The house rules of src/: no import circles, SQL only in src/db, nothing imports startup.
echo "== layers of src/ (tests/layout)"
python3 -m pytest -q -p no:cacheprovider tests/layout

# The official appmixer CLI, unchanged, against the same binary (tests/appmixer-cli). Install
# scripts are skipped (one fetches a Windows tool, one tries GitHub for a prebuilt binary); the
# one native module the CLI loads, farmhash, is built from source against this Node's headers.
echo "== tests/appmixer-cli (the official appmixer CLI)"
(
    cd tests/appmixer-cli
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    fi
    if [ ! -f node_modules/farmhash/build/Release/farmhash.node ]; then
        node_prefix=$(dirname "$(dirname "$(command -v node)")")
        npm_config_nodedir=${npm_config_nodedir:-$node_prefix} \
            npm rebuild farmhash --build-from-source --loglevel=error
    fi
    npm test --silent
)
