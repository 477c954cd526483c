#!/usr/bin/env bash
# Provisioning figures on a virtual fleet (2 app servers, PostgreSQL, Mosquitto and 3 devices
# behind NAT under systemd-nspawn): site.yml from bare base images, a no-change second run,
# delivery times (notice, heartbeat only, through a reload) and per-host dashboard downtime
# during the rolling upgrade. Runs tests/provisioning/test_playbooks.py
# RUNS times (3) and writes the medians to bench/results/provisioning.md. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
out=bench/results/provisioning
mkdir -p "$out"
for run in $(seq 1 "$runs"); do
    rm -f tests/artifacts/provisioning.json
    .venv/bin/python -m pytest tests/provisioning/test_playbooks.py -q -p no:cacheprovider
    cp tests/artifacts/provisioning.json "$out/run-$run.json"
done
.venv/bin/python bench/provisioning/summarise.py "$out" > bench/results/provisioning.md
cat bench/results/provisioning.md
