#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: `pg_start` runs initdb and pg_ctl as an
# unprivileged user (nobody, when run as root) in a temp directory, listening on a free
# loopback port with password (SCRAM) authentication, and sets PG_URL (a superuser URL to
# the `postgres` database) and PG_DIR; `pg_stop` stops it and removes the directory.
# PG_EXTRA_OPTS adds server options (bench/store.sh: pg_stat_statements).
# Sourced by interop suites; also usable by hand: `source tests/interop/lib/pg.sh; pg_start`.

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

pg_start() {
  PG_BIN=$(pg_bin)
  [ -n "$PG_BIN" ] || { echo "pg_start: PostgreSQL is not installed (tests/interop/setup.sh)" >&2; return 1; }
  PG_DIR=$(mktemp -d /tmp/legate-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  [ "$(id -u)" -ne 0 ] || chown nobody "$PG_DIR"
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '%s\n' "$PG_PASSWORD" > "$PG_DIR/pw"
  [ "$(id -u)" -ne 0 ] || chown nobody "$PG_DIR/pw"
  pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U legate --auth=scram-sha-256 \
    --pwfile="$PG_DIR/pw" -E UTF8 > "$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  rm -f "$PG_DIR/pw"
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c fsync=on -c max_connections=200 ${PG_EXTRA_OPTS:-}" \
    start > /dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
  PG_URL="postgres://legate:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
  export PG_URL PG_DIR PG_PORT PG_BIN
}

# pg_createdb NAME: a fresh database in the cluster; prints its URL.
pg_createdb() {
  PGPASSWORD=$PG_PASSWORD "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U legate "$1" || return 1
  echo "postgres://legate:$PG_PASSWORD@127.0.0.1:$PG_PORT/$1"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop > /dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}
