"""Errors both sides raise, under one root that catches all the fleet raises on purpose."""

from __future__ import annotations


class FleetError(Exception):
    """Root of every error the fleet's code raises on purpose (device host and control plane)."""


class ManifestError(FleetError):
    """A plugin manifest is missing, malformed or asks for something impossible."""


class PluginLoadError(FleetError):
    """A plugin version could not be loaded; the version it would replace keeps serving."""

    def __init__(self, plugin: str, version: str, reason: str) -> None:
        super().__init__(f"plugin {plugin} {version}: {reason}")
        self.plugin = plugin
        self.version = version
        self.reason = reason
