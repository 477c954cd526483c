"""Every write to devices goes through here: enrollment, heartbeats, tokens, edits."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from control_plane.devices.choices import EventKind
from control_plane.devices.exceptions import EnrollmentRefused, UnknownDeviceToken
from control_plane.devices.heartbeat_store import DeviceRow, find_device, store_heartbeat
from control_plane.devices.models import (
    Device,
    DeviceEvent,
    EnrollmentToken,
    LogLine,
    Reading,
    Tag,
)
from control_plane.devices.signals import (
    device_enrolled,
    device_retagged,
    engine_changed,
    heartbeat_recorded,
)
from control_plane.devices.tokens import hash_token, new_token
from fleet_common.wire.heartbeat import Heartbeat
from fleet_common.wire.reports import EngineReport

log = logging.getLogger(__name__)


@transaction.atomic
def create_enrollment_token(
    *,
    label: str,
    uses: int = 1,
    expires_at: datetime | None = None,
    created_by: User | None = None,
) -> tuple[EnrollmentToken, str]:
    """Creates a token good for ``uses`` enrollments; returns it and the secret, shown once."""
    secret = new_token()
    token = EnrollmentToken(
        token_hash=hash_token(secret),
        label=label,
        uses_left=uses,
        expires_at=expires_at,
        created_by=created_by,
    )
    token.full_clean()
    token.save()
    return token, secret


@transaction.atomic
def revoke_enrollment_token(*, token: EnrollmentToken) -> EnrollmentToken:
    """Stops a token from enrolling anything more; devices it enrolled stay enrolled."""
    token.uses_left = 0
    token.full_clean()
    token.save(update_fields=["uses_left"])
    return token


@transaction.atomic
def enroll_device(
    *,
    enrollment_token: str,
    name: str,
    host_version: str = "",
    agent_url: str = "",
    engine: EngineReport | None = None,
) -> tuple[Device, str]:
    """Spends one use of the enrollment token on a new device; returns it and its token.

    The device gets its first signed desired state at once (`device_enrolled`: standing
    assignments apply to it), so its first heartbeat converges. Raises `EnrollmentRefused` for an
    unknown, used-up or expired token and ValidationError for a bad name or agent URL.
    """
    token = (
        EnrollmentToken.objects.select_for_update()
        .filter(token_hash=hash_token(enrollment_token))
        .first()
    )
    if token is None:
        raise EnrollmentRefused("unknown enrollment token")
    if token.is_expired():
        raise EnrollmentRefused(f"enrollment token {token.label!r} expired at {token.expires_at}")
    spent = EnrollmentToken.objects.filter(pk=token.pk, uses_left__gt=0).update(
        uses_left=F("uses_left") - 1
    )
    if not spent:
        raise EnrollmentRefused(f"enrollment token {token.label!r} is used up")
    secret = new_token()
    device = Device(
        name=name,
        host_version=host_version,
        agent_url=agent_url,
        token_hash=hash_token(secret),
        enrolled_with=token,
    )
    if engine is not None:
        _set_engine(device, engine)
    device.full_clean()
    device.save()
    device_enrolled.send(sender=Device, device=device)
    return device, secret


def record_heartbeat(*, device_token: str, heartbeat: Heartbeat) -> str:
    """Stores what a device reported; returns its cached signed desired state (JSON text).

    The hot path of the control plane: one indexed lookup, one UPDATE of the device row,
    and one INSERT each for readings, events and log lines, and one upsert of health
    counters, in plain SQL (see `heartbeat_store`). Raises `UnknownDeviceToken`.
    """
    found = find_device(hash_token(device_token))
    if found is None:
        raise UnknownDeviceToken("unknown device token (was the device deleted? enroll it again)")
    desired_envelope = found.desired_envelope
    desired_versions = found.desired_versions
    if heartbeat.engine is not None and heartbeat.engine.key != found.engine_key:
        desired_envelope, desired_versions = _engine_changed(found.id, heartbeat.engine)
    last_reading = None
    if heartbeat.readings:
        newest = max(heartbeat.readings, key=lambda r: r.taken_at)
        last_reading = {
            "source": newest.source,
            "temperature_c": newest.temperature_c,
            "humidity_pct": newest.humidity_pct,
            "taken_at": newest.taken_at.isoformat(),
        }
    running = {plugin.name: plugin for plugin in heartbeat.plugins}
    row = DeviceRow(
        seen_at=timezone.now(),
        host_version=heartbeat.host_version,
        plugins=[plugin.to_json() for plugin in heartbeat.plugins],
        drifting=any(
            name not in running or running[name].version != version
            for name, version in desired_versions.items()
        ),
        failing=any(plugin.state not in (None, "running") for plugin in heartbeat.plugins),
        last_reading=last_reading,
        vitals=None if heartbeat.vitals is None else heartbeat.vitals.to_json(),
    )
    store_heartbeat(
        found.id,
        row,
        readings=heartbeat.readings,
        events=heartbeat.events,
        log_lines=heartbeat.log_tail,
        health=heartbeat.health,
    )
    if found.in_rollout:
        heartbeat_recorded.send(sender=Device, device_id=found.id)
    return desired_envelope


def _set_engine(device: Device, engine: EngineReport) -> None:
    device.engine_key = engine.key
    device.engine_target = engine.target
    device.engine_features = list(engine.features)


@transaction.atomic
def _engine_changed(device_id: Any, engine: EngineReport) -> tuple[str, dict[str, str]]:
    """A device reports another engine (a host upgrade): its artifacts change with it."""
    device = Device.objects.select_for_update().get(pk=device_id)
    log.info("device %s now reports engine key %s (%s)", device, engine.key[:16], engine.target)
    _set_engine(device, engine)
    device.save(update_fields=["engine_key", "engine_target", "engine_features"])
    engine_changed.send(sender=Device, device=device)
    device.refresh_from_db(fields=["desired_envelope", "desired_versions"])
    return device.desired_envelope, device.desired_versions


@transaction.atomic
def update_device(*, device: Device, name: str, agent_url: str, tags: Iterable[Tag]) -> Device:
    """Renames, re-addresses or re-tags a device; new tags can change its desired state."""
    device.name = name
    device.agent_url = agent_url
    device.full_clean()
    device.save(update_fields=["name", "agent_url"])
    wanted = {tag.pk for tag in tags}
    if wanted != set(device.tags.values_list("pk", flat=True)):
        device.tags.set(wanted)
        device_retagged.send(sender=Device, device=device)
    return device


def prune_history(*, before: datetime, batch: int = 10_000) -> tuple[int, int, int]:
    """Deletes readings, events and log lines older than ``before``, in batches; returns
    the counts.

    Batches keep each write transaction short, so heartbeats keep flowing meanwhile.
    """
    counts = []
    for model, field in ((Reading, "taken_at"), (DeviceEvent, "at"), (LogLine, "at")):
        total = 0
        while True:
            ids = list(
                model.objects.filter(**{f"{field}__lt": before}).values_list("pk", flat=True)[
                    :batch
                ]
            )
            if not ids:
                break
            total += model.objects.filter(pk__in=ids).delete()[0]
        counts.append(total)
    return counts[0], counts[1], counts[2]


@transaction.atomic
def delete_device(*, device: Device) -> None:
    """Forgets a device, its readings, events and device-targeted assignments; its token dies."""
    device.delete()


@transaction.atomic
def set_maintenance(device: Device, note: str) -> Device:
    """Marks ``device`` as being worked on (a host upgrade): offline then is expected."""
    now = timezone.now()
    Device.objects.filter(pk=device.pk).update(maintenance=note[:200], maintenance_since=now)
    _maintenance_event(device, now, f"started: {note}")
    device.refresh_from_db()
    return device


@transaction.atomic
def clear_maintenance(device: Device, outcome: str) -> Device:
    """Ends the device's maintenance, recording how it went."""
    now = timezone.now()
    Device.objects.filter(pk=device.pk).update(maintenance="", maintenance_since=None)
    _maintenance_event(device, now, f"finished: {outcome}")
    device.refresh_from_db()
    return device


def _maintenance_event(device: Device, at: datetime, detail: str) -> None:
    DeviceEvent.objects.create(
        device=device, at=at, plugin="device-host", kind=EventKind.MAINTENANCE, detail=detail
    )
