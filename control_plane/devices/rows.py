"""What one device looks like on the fleet pages: its plugins, desired against running,
with the failures each version caused, greyed as *last known* when it is offline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from control_plane.devices.choices import Connectivity
from control_plane.devices.models import Device, DeviceEvent

BADGE_WINDOW = timedelta(hours=24)
FAILURE_KINDS = ("refused", "reverted", "quarantined")


@dataclass(frozen=True)
class Failure:
    """A refusal, revert or quarantine a device reported, with the version it was about."""

    kind: str
    version: str
    at: datetime | None
    detail: str


@dataclass(frozen=True)
class PluginLine:
    """One plugin on one device: what it should run, what it runs (or last ran), and how.

    ``last_error`` belongs to ``running`` (the reported version), never to ``desired``.
    """

    name: str
    desired: str | None
    running: str | None
    state: str | None
    last_error: str | None
    trap_count: int
    failures: tuple[Failure, ...] = ()

    @property
    def drifting(self) -> bool:
        return self.desired is not None and self.desired != self.running

    @property
    def shows_bad_state(self) -> bool:
        """Reverted or quarantined, as reported: shown in red even when last known."""
        return self.state in ("reverted", "quarantined")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "desired": self.desired,
            "running": self.running,
            "state": self.state,
            "drifting": self.drifting,
            "last_error": self.last_error,
            "trap_count": self.trap_count,
            "failures": [
                {
                    "kind": f.kind,
                    "version": f.version,
                    "at": f.at.isoformat() if f.at else None,
                    "detail": f.detail,
                }
                for f in self.failures
            ],
        }


@dataclass(frozen=True)
class DeviceRow:
    """A device as the overview shows it; an offline device's plugins are *last known*."""

    id: str
    name: str
    connectivity: str
    host_version: str
    maintenance: str
    last_seen: datetime | None
    tags: tuple[str, ...]
    plugins: tuple[PluginLine, ...]
    last_reading: dict[str, Any] | None
    drifting: bool
    failing: bool

    @property
    def last_known(self) -> bool:
        """What it reports is from its last heartbeat, not now: it is not online."""
        return self.connectivity != Connectivity.ONLINE

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "connectivity": self.connectivity,
            "last_known": self.last_known,
            "host_version": self.host_version,
            "maintenance": self.maintenance,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "tags": list(self.tags),
            "drifting": self.drifting,
            "failing": self.failing,
            "plugins": [p.to_json() for p in self.plugins],
            "last_reading": self.last_reading,
        }


def recent_failures(device_ids: list[Any], now: datetime) -> dict[Any, list[Failure]]:
    """Refusals, reverts and quarantines of the last `BADGE_WINDOW`, per device, newest first."""
    found: dict[Any, list[Failure]] = {}
    rows = (
        DeviceEvent.objects.filter(
            device_id__in=device_ids, kind__in=FAILURE_KINDS, at__gte=now - BADGE_WINDOW
        )
        .order_by("-at")
        .values_list("device_id", "plugin", "version", "kind", "at", "detail")
    )
    for device_id, plugin, version, kind, at, detail in rows:
        found.setdefault((device_id, plugin), []).append(Failure(kind, version, at, detail[:200]))
    return found


def device_rows(devices: Iterable[Device], now: datetime) -> list[DeviceRow]:
    """The overview's rows for ``devices`` (a page): two more queries, tags and failures."""
    devices = list(devices)
    ids = [d.pk for d in devices]
    tags: dict[Any, list[str]] = {}
    for device_id, tag in Device.tags.through.objects.filter(device_id__in=ids).values_list(
        "device_id", "tag__name"
    ):
        tags.setdefault(device_id, []).append(tag)
    failures = recent_failures(ids, now)
    return [_row(d, sorted(tags.get(d.pk, [])), failures, now) for d in devices]


def _row(
    device: Device, tags: list[str], failures: dict[Any, list[Failure]], now: datetime
) -> DeviceRow:
    reported = {str(p.get("name")): p for p in device.reported_plugins if isinstance(p, dict)}
    desired = device.desired_versions if isinstance(device.desired_versions, dict) else {}
    plugins = tuple(
        PluginLine(
            name=name,
            desired=desired.get(name),
            running=reported.get(name, {}).get("version"),
            state=reported.get(name, {}).get("state"),
            last_error=reported.get(name, {}).get("last_error"),
            trap_count=int(reported.get(name, {}).get("trap_count") or 0),
            failures=tuple(failures.get((device.pk, name), ())[:3]),
        )
        for name in sorted(reported.keys() | desired.keys())
    )
    return DeviceRow(
        id=str(device.pk),
        name=device.name,
        connectivity=device.connectivity(now).value,
        host_version=device.host_version,
        maintenance=device.maintenance,
        last_seen=device.last_seen,
        tags=tuple(tags),
        plugins=plugins,
        last_reading=device.last_reading,
        drifting=device.drifting,
        failing=device.failing,
    )


def plugin_lines(device: Device, now: datetime) -> list[PluginLine]:
    """One device's plugins, desired against running, with its recent failures."""
    return list(_row(device, [], recent_failures([device.pk], now), now).plugins)
