"""The device-initiated channel: an outbox of desired-state notices, published over MQTT."""
