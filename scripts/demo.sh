#!/usr/bin/env bash
# The demo: a control plane (web and job worker), an MQTT broker (Mosquitto over TLS) and one
# device host with a simulated DHT22, all on loopback.
# The example plugins are published through the same services an admin upload uses and signed;
# the broker tells the device a new desired state is ready, the device fetches it over HTTP and
# verifies it. The control plane itself speaks plain HTTP here because nothing leaves this
# machine (a real fleet puts nginx with TLS in front: docs/deployment.md). Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
CP_PORT=${DEMO_CONTROL_PLANE_PORT:-8000}
DEVICE_PORT=${DEMO_DEVICE_PORT:-3000}
BROKER_PORT=${DEMO_BROKER_PORT:-8883}
ADMIN_PASSWORD=${DEMO_ADMIN_PASSWORD:-demo-admin}
source scripts/demo-env.sh
mkdir -p "$DEMO/control-plane" "$DEMO/trusted-keys" "$DEMO/device-host" "$DEMO/broker"
manage() { "$VENV/bin/python" control_plane/manage.py "$@"; }

# The demo's fleet CA (the broker's server certificate; the device pins it) and the device CA
# (devices' client certificates; the broker trusts only it), made once.
tls=$DEMO/tls
if [ ! -f "$tls/broker.pem" ]; then
    mkdir -p "$tls" && chmod 700 "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=pi-fleet demo CA" -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tls/broker-key.pem" -out "$tls/broker.csr" 2>/dev/null
    openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
        -CAcreateserial -days 825 -out "$tls/broker.pem" \
        -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') \
        2>/dev/null
fi
[ -f "$CONTROL_PLANE_DEVICE_CA_KEY_PATH" ] || manage create_device_ca >/dev/null
"$VENV/bin/python" - "$DEMO/broker" "$BROKER_PORT" <<'PY'
import sys
from pathlib import Path

import jinja2

out, port = Path(sys.argv[1]).resolve(), int(sys.argv[2])
tls = out.parent / "tls"
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader("playbooks/roles/broker/templates"),
    undefined=jinja2.StrictUndefined,
)
variables = {
    "broker_user": "root" if __import__("os").geteuid() == 0 else __import__("getpass").getuser(),
    "broker_listen_address": "127.0.0.1",
    "broker_port": port,
    "broker_device_ca_file": str(out.parent / "control-plane" / "device-ca.pem"),
    "broker_cert_file": str(tls / "broker.pem"),
    "broker_key_file": str(tls / "broker-key.pem"),
    "broker_acl_file": str(out / "acl"),
    "broker_persistence_dir": f"{out}/",
    "broker_log_dest": f"file {out / 'mosquitto.log'}",
    "broker_max_connections": 100,
    "broker_max_packet_size": 4096,
    "broker_topic_prefix": "pi-fleet/devices",
    "broker_publisher_identity": "control-plane",
}
(out / "acl").write_text(templates.get_template("acl.j2").render(variables))
(out / "mosquitto.conf").write_text(templates.get_template("mosquitto.conf.j2").render(variables))
PY

manage migrate --noinput >/dev/null
manage collectstatic --noinput >/dev/null
[ -f "$CONTROL_PLANE_SIGNING_KEY_PATH" ] || manage create_signing_key >/dev/null
manage export_public_key 2>/dev/null > "$DEMO/trusted-keys/fleet.pub"
DJANGO_SUPERUSER_PASSWORD=$ADMIN_PASSWORD manage createsuperuser --noinput \
    --username admin --email admin@fleet.example >/dev/null 2>&1 || true

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

/usr/sbin/mosquitto -c "$DEMO/broker/mosquitto.conf" > "$DEMO/broker.log" 2>&1 &
pids+=($!)

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
ca_file = "$PWD/$tls/ca.pem"
enrollment_token = "$token"
device_name = "demo-pi"
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
  Broker             mqtts://127.0.0.1:$BROKER_PORT (the device subscribes; nothing connects to it)

  Publishing the example plugins now; each arrives signed once its compile job is done.
  Logs: $DEMO/*.log (jobs: $DEMO/worker.log, for the Pis: $DEMO/cross-worker.log,
  broker: $DEMO/broker/mosquitto.log).
  Ctrl-C stops the demo.

TEXT
for plugin in plugins/*/; do
    manage publish_plugin "$plugin" --assign all --user admin 2>&1 | sed 's/^/  /' || true
done
wait
