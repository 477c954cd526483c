#!/usr/bin/env bash
# The whole suite, as `make test` runs it, in two lanes side by side:
#   hosts:          tests/ except the playbooks (device hosts, local fleets)
#   control-plane:  tests/provisioning (site.yml and upgrade.yml on the nspawn virtual fleet),
#                   then control_plane/ on SQLite, then again on a throwaway PostgreSQL
# Both lanes spend much of their time waiting on processes (heartbeats, soak times, boots,
# Ansible round trips), so each fills the other's gaps instead of running after it; the
# split keeps the two about the same length.
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

lane hosts "$PY" -m pytest tests --ignore=tests/provisioning -p no:cacheprovider &
hosts=$!
lane control-plane bash -c "status=0; \
    '$PY' -m pytest tests/provisioning -p no:cacheprovider || status=1; \
    '$PY' -m pytest control_plane -p no:cacheprovider || status=1; \
    scripts/with-postgres.sh '$PY' -m pytest control_plane -p no:cacheprovider || status=1; \
    exit \$status" &
control_plane=$!

wait "$hosts"
hosts_status=$?
wait "$control_plane"
control_plane_status=$?
echo "hosts lane: exit $hosts_status; control-plane lane (playbooks, SQLite, PostgreSQL): exit $control_plane_status"
[ "$hosts_status" -eq 0 ] && [ "$control_plane_status" -eq 0 ]
