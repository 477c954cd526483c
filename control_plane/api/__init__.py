"""The device-facing HTTP API (docs/delivery-protocol.md): enroll, heartbeat, artifacts."""
