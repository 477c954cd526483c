#!/usr/bin/env bash
# The demo: a control plane (web and job worker) and one device host with a simulated DHT22,
# on loopback.
# The example plugins are published through the same services an admin upload uses, signed,
# pushed to the device and verified there. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
CP_PORT=${DEMO_CONTROL_PLANE_PORT:-8000}
DEVICE_PORT=${DEMO_DEVICE_PORT:-3000}
ADMIN_PASSWORD=${DEMO_ADMIN_PASSWORD:-demo-admin}
source scripts/demo-env.sh
mkdir -p "$DEMO/control-plane" "$DEMO/trusted-keys" "$DEMO/device-host"
manage() { "$VENV/bin/python" control_plane/manage.py "$@"; }

manage migrate --noinput >/dev/null
manage collectstatic --noinput >/dev/null
[ -f "$CONTROL_PLANE_SIGNING_KEY_PATH" ] || manage create_signing_key >/dev/null
manage export_public_key 2>/dev/null > "$DEMO/trusted-keys/fleet.pub"
DJANGO_SUPERUSER_PASSWORD=$ADMIN_PASSWORD manage createsuperuser --noinput \
    --username admin --email admin@fleet.example >/dev/null 2>&1 || true

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$VENV/bin/gunicorn" --bind "127.0.0.1:$CP_PORT" --workers 2 --threads 4 \
    --access-logfile - control_plane.wsgi:application > "$DEMO/control-plane.log" 2>&1 &
pids+=($!)
# Checks and compiles uploads in the background; SIGTERM lets a running job finish. The
# second worker compiles for the Pis (aarch64, under qemu-user) at low priority: the demo's
# device is this machine, and its artifact comes from the first.
"$VENV/bin/python" control_plane/manage.py qcluster > "$DEMO/worker.log" 2>&1 &
pids+=($!)
Q_CLUSTER_NAME=pi-fleet-cross nice -n 15 "$VENV/bin/python" control_plane/manage.py qcluster \
    > "$DEMO/cross-worker.log" 2>&1 &
pids+=($!)

if [ ! -f "$DEMO/device-host/state/agent/agent.json" ]; then
    token=$(manage create_enrollment_token --label demo-device | tail -n 1 | awk '{print $NF}')
else
    token=already-enrolled
fi
cat > "$DEMO/device-host.toml" <<TOML
[server]
host = "127.0.0.1"
port = $DEVICE_PORT

[plugins]
source = "signed"
dashboard = "dashboard"

[state]
dir = "$DEMO/device-host/state"

[agent]
control_plane_url = "http://127.0.0.1:$CP_PORT"
enrollment_token = "$token"
device_name = "demo-pi"
agent_url = "http://127.0.0.1:$DEVICE_PORT"
trusted_keys_dir = "$DEMO/trusted-keys"
heartbeat_interval_s = 5

[sensor]
driver = "simulated"
pins = [4]

[gpio]
driver = "simulated"
pins = [17]
TOML
"$VENV/bin/device-host" serve -c "$DEMO/device-host.toml" > "$DEMO/device-host.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$DEVICE_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done
cat <<TEXT

  Device dashboard   http://127.0.0.1:$DEVICE_PORT/   (health: /healthz, metrics: /metrics)
  Fleet status       http://127.0.0.1:$CP_PORT/fleet/
  Admin              http://127.0.0.1:$CP_PORT/admin/   login: admin / $ADMIN_PASSWORD

  Publishing the example plugins now; each arrives signed once its compile job is done.
  Logs: $DEMO/*.log (jobs: $DEMO/worker.log, for the Pis: $DEMO/cross-worker.log).
  Ctrl-C stops the demo.

TEXT
for plugin in plugins/*/; do
    manage publish_plugin "$plugin" --assign all --user admin 2>&1 | sed 's/^/  /' || true
done
wait
