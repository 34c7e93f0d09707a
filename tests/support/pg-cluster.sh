#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `start DIR` makes one in DIR (initdb, TLS with a
# self-signed certificate, trust for local connections only) on a free port and prints its URL;
# `stop DIR` stops it and removes DIR. PostgreSQL refuses to run as root: as root, the cluster
# belongs to an unprivileged user made for it (appmixer-pg).
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bindir" ] || { echo "pg-cluster.sh: PostgreSQL is not installed" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u appmixer-pg -- "$@"
    else
        "$@"
    fi
}

case "${1:-}" in
start)
    dir=$2
    if [ "$(id -u)" = 0 ] && ! id appmixer-pg >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin appmixer-pg
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown appmixer-pg "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log"
    # TLS for the sslmode tests: a CA of its own (ca.crt, readable by the tests) and a
    # certificate it signed for localhost and 127.0.0.1.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=appmixer-test-ca \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
    install -m 600 "$dir/server.key" "$dir/data/server.key"
    install -m 644 "$dir/server.crt" "$dir/data/server.crt"
    [ "$(id -u)" = 0 ] && chown appmixer-pg "$dir/data/server.key" "$dir/data/server.crt"
    rm -f "$dir/ca.key" "$dir/server.key" "$dir/server.csr"
    chmod 644 "$dir/ca.crt"
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 300
ssl = on
EOF
    # Tests trade durability for speed; PG_DURABLE=1 (the benchmark) keeps the defaults.
    if [ -z "${PG_DURABLE:-}" ]; then
        printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$dir/data/postgresql.conf"
    fi
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    dir=$2
    [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    rm -rf "$dir"
    ;;
pg_ctl)
    # pg_ctl DIR ARGS…: start or stop the cluster again (the fault tests).
    dir=$2
    shift 2
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" "$@"
    ;;
*)
    echo "usage: pg-cluster.sh start DIR | stop DIR | pg_ctl DIR ARGS…" >&2
    exit 2
    ;;
esac
