#!/usr/bin/env bash
# The whole suite, as `make test` runs it, in two lanes side by side:
#   hosts:          tests/ (device hosts, fleets, playbooks) on SQLite control planes
#   control plane:  control_plane/ on SQLite, then again on a throwaway PostgreSQL
# The first lane spends much of its time waiting on processes (heartbeats, soak times, boots),
# so the second lane's CPU-bound Django tests fill those gaps instead of running after them.
# Each line is prefixed with its lane. Fails if either lane fails or collects no test
# (pytest's exit 5 is a failure here, not a pass).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

lane() {
    local name=$1
    shift
    "$@" 2>&1 | sed -u "s/^/[$name] /"
    return "${PIPESTATUS[0]}"
}

lane hosts "$PY" -m pytest tests -p no:cacheprovider &
hosts=$!
lane control-plane bash -c "set -e; '$PY' -m pytest control_plane -p no:cacheprovider; \
    scripts/with-postgres.sh '$PY' -m pytest control_plane -p no:cacheprovider" &
control_plane=$!

wait "$hosts"
hosts_status=$?
wait "$control_plane"
control_plane_status=$?
echo "hosts lane: exit $hosts_status; control-plane lane (SQLite, PostgreSQL): exit $control_plane_status"
[ "$hosts_status" -eq 0 ] && [ "$control_plane_status" -eq 0 ]
