#!/usr/bin/env bash
# Heartbeat load test: a throwaway control plane (SQLite, gunicorn) on loopback, DEVICES
# enrolled devices, wrk sending heartbeats for SECONDS. Prints requests/s and latency.
#   tests/control_plane/load/run.sh            # 1000 devices, 5 readings each, 15 s
#   READINGS=0 SECONDS_=30 tests/control_plane/load/run.sh
# Needs wrk (apt-get install wrk). Measurements only: nothing passes or fails.
set -euo pipefail
cd "$(dirname "$0")/../../.."
command -v wrk >/dev/null || { echo "load: wrk is missing (apt-get install wrk)" >&2; exit 1; }
devices=${DEVICES:-1000}
duration=${SECONDS_:-15}
workers=${WORKERS:-$(( 2 * $(nproc) ))}
state=$(mktemp -d /tmp/cp-load.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CONTROL_PLANE_SECRET_KEY=load-test-only-load-test-only-load-test-only
export CONTROL_PLANE_DATABASE_URL="sqlite:///$state/db.sqlite3"
export CONTROL_PLANE_ARTIFACT_ROOT="$state/artifacts" CONTROL_PLANE_STATIC_ROOT="$state"
export CONTROL_PLANE_SIGNING_KEY_PATH="$state/key.pem"
export CONTROL_PLANE_ALLOWED_HOSTS=127.0.0.1 CONTROL_PLANE_LOG_LEVEL=WARNING
export TOKENS="$state/tokens.txt"
gunicorn_pid=
cleanup() {
    [ -n "$gunicorn_pid" ] && kill "$gunicorn_pid" 2>/dev/null && wait "$gunicorn_pid" 2>/dev/null
    rm -rf "$state"
}
trap cleanup EXIT
manage() { .venv/bin/python control_plane/manage.py "$@"; }
manage migrate -v0
manage create_signing_key >/dev/null 2>&1
manage shell -v0 -c "
from control_plane.devices.services import create_enrollment_token, enroll_device
_, secret = create_enrollment_token(label='load', uses=$devices)
tokens = [enroll_device(enrollment_token=secret, name=f'pi-{i}')[1] for i in range($devices)]
open('$TOKENS', 'w').write('\n'.join(tokens) + '\n')"
.venv/bin/gunicorn -c control_plane/gunicorn.conf.py -w "$workers" -b "127.0.0.1:$port" \
    control_plane.wsgi --log-level warning &
gunicorn_pid=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/accounts/login/" && break; sleep 0.2; done
echo "$devices devices, ${READINGS:-5} readings per heartbeat, $workers gunicorn workers, ${duration} s:"
wrk -t2 -c32 -d"${duration}s" -s tests/control_plane/load/heartbeat.lua "http://127.0.0.1:$port"
