#!/usr/bin/env bash
# Runs every fleet benchmark (about 12 minutes on 2 cores) and writes bench/results/fleet.md:
#   1. heartbeats/s the control plane absorbs, SQLite and a throwaway PostgreSQL
#   2. approval → every device of a 5-device local fleet serving the new version, split,
#      told by a notice over MQTT (Mosquitto, TLS) vs heartbeats only (baseline), same run
#   3. scripts/publish plugins/dashboard → the device's new page, notice vs heartbeat only
#   4. the admin upload's answer time and the web worker's memory, next to the check job's
#   5. a device host's peak memory while installing the dashboard, both modes
#   6. bytes on the wire per update, and what level 19 or a delta would send
#   7. rollout decisions at 10,000 devices: canary reported → wave passed, first trap → halt
#   8. the fleet pages at 10,000 devices (time and bytes), against the unpaginated page
#   9. an assignment to 10,000 devices on PostgreSQL: heartbeat stall and errors against a
#      baseline, the command's return time, every desired state written, every notice
#      published (the broker's PUBACKs)
#   9. readings retention: prune time per million rows, 1 M and 2 M, against the old code
# Each also runs alone (see bench/fleet/README.md). Loopback only; every step is bounded by
# `timeout` and stops what it started. Measurements only: nothing passes or fails on a timing.
#   FLEET_DEVICES=1000 FLEET_DURATION=15 bench/fleet/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
results=bench/results/fleet

missing=()
for tool in wrk zstd curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/bin/time ] || missing+=(time)
[ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench/fleet: missing ${missing[*]}; install with: apt-get install -y ${missing[*]}" >&2
    exit 1
fi

heartbeat_args=(--devices "${FLEET_DEVICES:-1000}" --duration "${FLEET_DURATION:-15}" --health 0,3)
failed=()
started=$SECONDS
step() {
    local name=$1
    shift
    printf '\033[1m==> %s\033[0m\n' "$name"
    "$@" || failed+=("$name")
}
step heartbeats-sqlite timeout 900 "$PY" bench/fleet/bench_heartbeats.py "${heartbeat_args[@]}"
step heartbeats-postgresql scripts/with-postgres.sh \
    timeout 900 "$PY" bench/fleet/bench_heartbeats.py --database postgresql "${heartbeat_args[@]}" \
    --readings 5 --servers 1,2 --answers full,conditional
step delivery timeout 1800 "$PY" bench/fleet/bench_delivery.py
step publish timeout 900 "$PY" bench/fleet/bench_publish.py
step upload timeout 900 "$PY" bench/fleet/bench_upload.py
step install_memory timeout 900 "$PY" bench/fleet/bench_install_memory.py
step wire timeout 600 "$PY" bench/fleet/bench_wire.py
step rollouts-sqlite timeout 900 "$PY" bench/fleet/bench_rollouts.py
step rollouts-postgresql scripts/with-postgres.sh \
    timeout 900 "$PY" bench/fleet/bench_rollouts.py --database postgresql
step fleet-pages-sqlite timeout 900 "$PY" bench/fleet/bench_fleet_pages.py
step fleet-pages-postgresql scripts/with-postgres.sh \
    timeout 900 "$PY" bench/fleet/bench_fleet_pages.py --database postgresql
step fanout-postgresql scripts/with-postgres.sh \
    timeout 900 "$PY" bench/fleet/bench_fanout.py --database postgresql
step prune-sqlite timeout 900 "$PY" bench/fleet/bench_prune.py
step prune-postgresql scripts/with-postgres.sh \
    timeout 900 "$PY" bench/fleet/bench_prune.py --database postgresql

{
    echo "# Fleet benchmarks"
    echo
    echo "Written by \`bench/fleet/run.sh\`; raw figures in \`$results/*.json\`."
    for section in heartbeats-sqlite heartbeats-postgresql delivery publish upload \
        install_memory wire rollouts-sqlite rollouts-postgresql fleet-pages-sqlite \
        fleet-pages-postgresql prune-sqlite prune-postgresql fanout-postgresql; do
        echo
        if [[ " ${failed[*]} " == *" $section "* ]] || [ ! -f "$results/$section.md" ]; then
            echo "### $section: did not finish in this run (see its output above)"
        else
            cat "$results/$section.md"
        fi
    done
} > bench/results/fleet.md
echo "Done in $((SECONDS - started)) s. Results: bench/results/fleet.md"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench/fleet: these did not finish: ${failed[*]}" >&2
    exit 1
fi
