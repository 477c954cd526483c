#!/usr/bin/env bash
# The whole suite, as `make test` runs it, in two lanes side by side:
#   hosts:          tests/ except the playbooks and the HTTP servers (device hosts, local fleets)
#   control-plane:  tests/provisioning (site.yml and upgrade.yml on the nspawn virtual fleet),
#                   tests/http (the TLS front and the device's web server under attack),
#                   then control_plane/ on SQLite, then again on a throwaway PostgreSQL
# Both lanes spend much of their time waiting on processes (heartbeats, soak times, boots,
# Ansible round trips), so each fills the other's gaps instead of running after it; the
# split keeps the two about the same length.
# Each line is prefixed with its lane. Fails if either lane fails or collects no test
# (pytest's exit 5 is a failure here, not a pass). The lanes interleave, and a CI log is
# often read only from its end, so the script ends with each lane's failures and totals;
# every lane's whole output and a JUnit report per pytest run stay in var/test-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOGS=var/test-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"

lane() {
    local name=$1
    shift
    "$@" 2>&1 | tee "$LOGS/$name.log" | sed -u "s/^/[$name] /"
    return "${PIPESTATUS[0]}"
}

# One pytest run, with its JUnit report named after it (exported for with-postgres.sh's shell).
pytest_in() {
    local report=$1
    shift
    "$PY" -m pytest "$@" -p no:cacheprovider "--junitxml=$LOGS/$report.xml"
}
export -f pytest_in
export PY LOGS

control_plane_lane() {
    local status=0
    pytest_in playbooks tests/provisioning || status=1
    pytest_in http tests/http || status=1
    pytest_in sqlite control_plane || status=1
    scripts/with-postgres.sh bash -c 'pytest_in postgresql control_plane' || status=1
    return $status
}

lane hosts pytest_in hosts tests --ignore=tests/provisioning --ignore=tests/http &
hosts=$!
lane control-plane control_plane_lane &
control_plane=$!

wait "$hosts"
hosts_status=$?
wait "$control_plane"
control_plane_status=$?
for name in hosts control-plane; do
    echo "---- $name lane: failures and totals ----"
    grep -E '^(FAILED|ERROR) |^=+ .*( passed| failed| error|no tests ran).* =+$' "$LOGS/$name.log"
done
echo "hosts lane: exit $hosts_status; control-plane lane (playbooks, SQLite, PostgreSQL): exit $control_plane_status"
[ "$hosts_status" -eq 0 ] && [ "$control_plane_status" -eq 0 ]
