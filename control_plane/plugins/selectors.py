"""Reads for the plugin pages: what became of a version on the devices that got it."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from control_plane.devices.choices import EventKind
from control_plane.devices.models import DeviceEvent, PluginHealth
from control_plane.plugins.models import PluginVersion

OUTCOME_KINDS = (EventKind.INSTALLED, EventKind.REFUSED, EventKind.REVERTED, EventKind.QUARANTINED)


@dataclass(frozen=True)
class Outcome:
    """How many devices ran a version, and how many reported each install outcome."""

    ran: int
    devices_by_kind: dict[str, int]

    @property
    def reported(self) -> bool:
        return self.ran > 0 or any(self.devices_by_kind.values())


def version_outcome(version: PluginVersion) -> Outcome:
    """Devices that sent health for the version, and distinct devices per outcome event."""
    name = version.plugin.name
    ran = PluginHealth.objects.filter(plugin=name, version=version.version).count()
    counts = dict(
        DeviceEvent.objects.filter(plugin=name, version=version.version, kind__in=OUTCOME_KINDS)
        .values_list("kind")
        .annotate(devices=Count("device", distinct=True))
    )
    return Outcome(ran, {str(kind): counts.get(kind, 0) for kind in OUTCOME_KINDS})
