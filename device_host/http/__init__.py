"""The device's HTTP server on port 3000: dashboards, health, metrics and readings."""
