"""Devices: enrollment, heartbeats, readings and events, and the fleet status pages."""
