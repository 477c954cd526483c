"""Reads for the fleet pages: devices with their connectivity, readings and events."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from control_plane.devices.choices import Connectivity
from control_plane.devices.models import Device, DeviceEvent, Reading, offline_after

HISTORY_READINGS = 360
RECENT_EVENTS = 50


def fleet_devices(*, tag: str | None = None, state: str | None = None) -> QuerySet[Device]:
    """Devices, optionally only those with ``tag`` and in ``state`` (online or offline)."""
    devices = Device.objects.prefetch_related("tags").order_by("name", "pk")
    if tag:
        devices = devices.filter(tags__name=tag)
    online = Q(last_seen__gte=timezone.now() - offline_after())
    if state == Connectivity.ONLINE:
        devices = devices.filter(online)
    elif state == Connectivity.OFFLINE:
        devices = devices.exclude(online)
    return devices


def find_device(name_or_id: str) -> Device:
    """The device with this id, or the only one with this name; ValidationError otherwise."""
    try:
        by_id = Device.objects.filter(pk=uuid.UUID(name_or_id)).first()
    except ValueError:
        by_id = None
    if by_id is not None:
        return by_id
    matches = list(Device.objects.filter(name=name_or_id)[:2])
    if not matches:
        raise ValidationError(f"no device named {name_or_id!r}")
    if len(matches) > 1:
        raise ValidationError(f"several devices are named {name_or_id!r}; use the device id")
    return matches[0]


def device_summary(device: Device, now: datetime) -> dict[str, Any]:
    """One device as the fleet page and its JSON show it."""
    return {
        "id": str(device.pk),
        "name": device.name,
        "connectivity": device.connectivity(now).value,
        "host_version": device.host_version,
        "maintenance": device.maintenance,
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        "tags": [tag.name for tag in device.tags.all()],
        "plugins": [
            {key: plugin.get(key) for key in ("name", "version", "state")}
            for plugin in device.reported_plugins
        ],
        "last_reading": device.last_reading,
        "agent_url": device.agent_url,
    }


@dataclass(frozen=True)
class PluginRow:
    """A plugin on one device: what it reports running, and what it should run."""

    name: str
    reported: dict[str, Any] | None
    desired_version: str | None
    desired_serial: int | None

    @property
    def converged(self) -> bool:
        running = self.reported.get("version") if self.reported else None
        return self.desired_version is None or running == self.desired_version


def plugin_rows(device: Device) -> list[PluginRow]:
    """Reported plugins joined with the releases of the device's signed desired state."""
    reported = {str(p.get("name")): p for p in device.reported_plugins}
    desired: dict[str, dict[str, Any]] = {}
    statement = device.desired_statement
    for envelope in statement["releases"] if statement else []:
        release = json.loads(envelope["statement"])
        desired[release["plugin"]] = release
    return [
        PluginRow(
            name=name,
            reported=reported.get(name),
            desired_version=desired[name]["version"] if name in desired else None,
            desired_serial=desired[name]["serial"] if name in desired else None,
        )
        for name in sorted(reported.keys() | desired.keys())
    ]


def recent_readings(device: Device, limit: int = HISTORY_READINGS) -> list[Reading]:
    """The newest ``limit`` readings, oldest first."""
    newest = Reading.objects.filter(device=device).order_by("-taken_at")[:limit]
    return list(reversed(newest))


def recent_events(device: Device, limit: int = RECENT_EVENTS) -> list[DeviceEvent]:
    return list(DeviceEvent.objects.filter(device=device).order_by("-at", "-pk")[:limit])
