# The demo control plane's settings; sourced by scripts/demo.sh and scripts/publish.
DEMO=var/demo
export CONTROL_PLANE_SECRET_KEY=demo-only-secret-key-do-not-use-in-production-0123456789
export CONTROL_PLANE_ALLOWED_HOSTS=127.0.0.1,localhost
export CONTROL_PLANE_DATABASE_URL="sqlite:///$PWD/$DEMO/control-plane/db.sqlite3"
export CONTROL_PLANE_SIGNING_KEY_PATH="$PWD/$DEMO/control-plane/signing-key.pem"
export CONTROL_PLANE_STATIC_ROOT="$PWD/$DEMO/control-plane/static"
export CONTROL_PLANE_HEARTBEAT_INTERVAL_S=5
export CONTROL_PLANE_DEVICE_CA_CERT_PATH="$PWD/$DEMO/control-plane/device-ca.pem"
export CONTROL_PLANE_DEVICE_CA_KEY_PATH="$PWD/$DEMO/control-plane/device-ca-key.pem"
export CONTROL_PLANE_MQTT_URL="mqtts://127.0.0.1:${DEMO_BROKER_PORT:-8883}"
export CONTROL_PLANE_MQTT_CA_FILE="$PWD/$DEMO/tls/ca.pem"
