"""The device agent: enrolls, heartbeats, and installs only what the fleet's key signed."""

from device_host.agent.agent import DeviceAgent

__all__ = ["DeviceAgent"]
