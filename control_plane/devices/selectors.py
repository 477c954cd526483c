"""Reads for the fleet pages: one page of devices with the truth about each, and one device.

Every fleet read is bounded: counts are single aggregate queries, lists are pages of
`PAGE_SIZE`, and a page's rows need one query for the devices, one for their tags and one
for their recent failures, whatever the size of the fleet.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import BooleanField, CharField, Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from control_plane.devices.choices import Connectivity
from control_plane.devices.models import (
    Device,
    DeviceEvent,
    LogLine,
    PluginHealth,
    Reading,
    offline_after,
)
from control_plane.devices.rows import FAILURE_KINDS
from control_plane.devices.tokens import hash_token

PAGE_SIZE = 50
HISTORY_READINGS = 360
RECENT_EVENTS = 50
LOG_TAIL = 100
"""How long a revert or quarantine stays on the overview after the device reported it."""
INSTALL_KINDS = ("installed", "refused", "reverted", "quarantined", "removed")
STATES = ("online", "offline", "maintenance", "drifting", "failing")
SORTS = {
    "name": ("name", "pk"),
    "-name": ("-name", "-pk"),
    "last_seen": ("last_seen", "name"),
    "-last_seen": ("-last_seen", "name"),
}
ROW_FIELDS = (
    "id",
    "name",
    "host_version",
    "maintenance",
    "last_seen",
    "reported_plugins",
    "desired_versions",
    "drifting",
    "failing",
    "last_reading",
)
"""The columns a fleet row needs: never the signed envelope, which is most of a row's bytes."""


@dataclass(frozen=True)
class FleetQuery:
    """What an operator asked the overview for; `parse` refuses what it cannot mean."""

    search: str = ""
    tag: str = ""
    state: str = ""
    plugin: str = ""
    version: str = ""
    sort: str = "name"
    page: int = 1
    since: datetime | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> FleetQuery:
        """Raises ValidationError naming the parameter that is wrong and what it may be."""
        state = params.get("state", "")
        if state and state not in STATES:
            raise ValidationError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        sort = params.get("sort", "") or "name"
        if sort not in SORTS:
            raise ValidationError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        raw_page = params.get("page", "") or "1"
        if not (raw_page.isascii() and raw_page.isdigit()) or int(raw_page) < 1:
            raise ValidationError(f"page must be a whole number from 1, not {raw_page!r}")
        since = None
        if params.get("since"):
            since = parse_datetime(params["since"])
            if since is None:
                raise ValidationError(f"since must be an ISO 8601 time, not {params['since']!r}")
            if timezone.is_naive(since):
                since = since.replace(tzinfo=UTC)
        plugin, version = params.get("plugin", "").strip(), params.get("version", "").strip()
        if version and not plugin:
            raise ValidationError("a version filter needs its plugin (plugin=...&version=...)")
        return cls(
            search=params.get("q", "").strip()[:100],
            tag=params.get("tag", "").strip(),
            state=state,
            plugin=plugin,
            version=version,
            sort=sort,
            page=int(raw_page),
            since=since,
        )

    def filters(self) -> dict[str, str]:
        """The non-default filters, for links that keep them (pagination, sorting)."""
        given = {
            "q": self.search,
            "tag": self.tag,
            "state": self.state,
            "plugin": self.plugin,
            "version": self.version,
        }
        return {key: value for key, value in given.items() if value}


def _online(now: datetime) -> Q:
    return Q(last_seen__gte=now - offline_after())


def runs_version(plugin: str, version: str | None = None) -> RawSQL:
    """True where the device's last heartbeat lists ``plugin`` (at ``version``, if given)."""
    if connection.vendor == "postgresql":
        wanted: dict[str, str] = {"name": plugin}
        if version is not None:
            wanted["version"] = version
        return RawSQL(
            '"devices_device"."reported_plugins" @> %s::jsonb',
            (json.dumps([wanted]),),
            output_field=BooleanField(),
        )
    sql = (
        'EXISTS (SELECT 1 FROM json_each("devices_device"."reported_plugins") AS p '
        "WHERE json_extract(p.value, '$.name') = %s"
    )
    params: tuple[str, ...] = (plugin,)
    if version is not None:
        sql += " AND json_extract(p.value, '$.version') = %s"
        params += (version,)
    return RawSQL(sql + ")", params, output_field=BooleanField())


def filtered_devices(query: FleetQuery, now: datetime) -> QuerySet[Device]:
    """The devices matching ``query``'s search and filters, in its order, row columns only."""
    devices = Device.objects.only(*ROW_FIELDS).order_by(*SORTS[query.sort])
    if query.search:
        devices = devices.filter(name__icontains=query.search)
    if query.tag:
        devices = devices.filter(tags__name=query.tag)
    online = _online(now)
    if query.state == Connectivity.ONLINE:
        devices = devices.filter(online)
    elif query.state == Connectivity.OFFLINE:
        devices = devices.exclude(online).filter(maintenance="")
    elif query.state == Connectivity.MAINTENANCE:
        devices = devices.exclude(online).exclude(maintenance="")
    elif query.state == "drifting":
        devices = devices.filter(drifting=True)
    elif query.state == "failing":
        devices = devices.filter(failing=True)
    if query.plugin:
        devices = devices.filter(runs_version(query.plugin, query.version or None))
    return devices


def fleet_counts(now: datetime) -> dict[str, int]:
    """Online, offline, in maintenance, drifting and failing over the whole fleet: one query."""
    online = _online(now)
    counts = Device.objects.aggregate(
        total=Count("pk"),
        online=Count("pk", filter=online),
        maintenance=Count("pk", filter=~online & ~Q(maintenance="")),
        drifting=Count("pk", filter=Q(drifting=True)),
        failing=Count("pk", filter=Q(failing=True)),
    )
    counts["offline"] = counts["total"] - counts["online"] - counts["maintenance"]
    return counts


def fleet_page(query: FleetQuery, now: datetime) -> Page[Device]:
    """One page of matching devices; a page past the end is the last one."""
    paginator = Paginator(filtered_devices(query, now), PAGE_SIZE)
    return paginator.get_page(query.page)


def changed_since(devices: Iterable[Device], since: datetime, now: datetime) -> list[Device]:
    """Those of ``devices`` that heartbeated after ``since`` or went offline since then."""
    went_offline_from = since - offline_after()
    went_offline_to = now - offline_after()
    return [
        d
        for d in devices
        if d.last_seen is not None
        and (d.last_seen > since or went_offline_from < d.last_seen <= went_offline_to)
    ]


def version_devices(plugin: str, version: str, kind: str, page: int) -> Page[Device]:
    """Devices that run (``kind="running"``), should run (``"desired"``) or failed
    (``"failed"``) one plugin version, a page at a time."""
    devices = Device.objects.only(*ROW_FIELDS).order_by("name", "pk")
    if kind == "running":
        devices = devices.filter(runs_version(plugin, version))
    elif kind == "desired":
        wanted = Cast(KeyTextTransform(plugin, "desired_versions"), CharField())
        devices = devices.alias(wanted=wanted).filter(wanted=version)
    elif kind == "failed":
        failed = DeviceEvent.objects.filter(plugin=plugin, version=version, kind__in=FAILURE_KINDS)
        devices = devices.filter(pk__in=failed.values("device_id"))
    else:
        raise ValidationError(f"kind must be running, desired or failed, not {kind!r}")
    return Paginator(devices, PAGE_SIZE).get_page(page)


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


def plugin_health(device: Device) -> list[PluginHealth]:
    """Health counters of the versions the device runs now (as its last heartbeat says)."""
    running = {
        (str(p.get("name")), str(p.get("version")))
        for p in device.reported_plugins
        if isinstance(p, dict) and p.get("version")
    }
    if not running:
        return []
    rows = PluginHealth.objects.filter(device=device, plugin__in={name for name, _ in running})
    return [row for row in rows.order_by("plugin") if (row.plugin, row.version) in running]


def recent_readings(device: Device, limit: int = HISTORY_READINGS) -> list[Reading]:
    """The newest ``limit`` readings, oldest first."""
    newest = Reading.objects.filter(device=device).order_by("-taken_at")[:limit]
    return list(reversed(newest))


def recent_events(device: Device, limit: int = RECENT_EVENTS) -> list[DeviceEvent]:
    return list(DeviceEvent.objects.filter(device=device).order_by("-at", "-pk")[:limit])


def install_history(device: Device, limit: int = RECENT_EVENTS) -> list[DeviceEvent]:
    """Installs, refusals, reverts, quarantines and removals, newest first."""
    events = DeviceEvent.objects.filter(device=device, kind__in=INSTALL_KINDS)
    return list(events.order_by("-at", "-pk")[:limit])


def log_tail(device: Device, limit: int = LOG_TAIL) -> list[LogLine]:
    """The newest ``limit`` plugin log lines, oldest first (as a terminal shows them)."""
    return list(reversed(LogLine.objects.filter(device=device).order_by("-at", "-pk")[:limit]))


def device_for_token(token: str) -> Device | None:
    """The device a bearer token belongs to, if any: the one lookup every device API uses."""
    return Device.objects.filter(token_hash=hash_token(token)).first()
