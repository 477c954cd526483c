#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL server on loopback:
#   scripts/with-postgres.sh pytest control_plane
# The server lives in a temporary directory, listens on 127.0.0.1 only, and is removed
# afterwards. The command sees CONTROL_PLANE_TEST_DATABASE_URL.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "with-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

dir=$(mktemp -d /tmp/pi-fleet-pg.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')

cleanup() {
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

echo "$password" > "$dir/password"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir/password"
as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 \
    --pwfile="$dir/password" >/dev/null
rm "$dir/password"
as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null
export CONTROL_PLANE_TEST_DATABASE_URL="postgresql://postgres:$password@127.0.0.1:$port/postgres"
"$@"
