"""Every write to devices goes through here: enrollment, heartbeats, tokens, edits."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from control_plane.devices.choices import EventKind
from control_plane.devices.exceptions import (
    EnrollmentRefused,
    TelemetryRefused,
    UnknownDeviceToken,
)
from control_plane.devices.heartbeat_store import (
    TELEMETRY_WINDOW,
    DeviceRow,
    Found,
    OverBudget,
    find_device,
    store_heartbeat,
)
from control_plane.devices.models import Device, DeviceEvent, EnrollmentToken, Tag
from control_plane.devices.retention import Pruned, prune_history
from control_plane.devices.signals import (
    device_ahead,
    device_enrolled,
    device_retagged,
    engine_changed,
    heartbeat_recorded,
)
from control_plane.devices.telemetry import (
    check_budget,
    check_reading_count,
    retry_after,
    split_future,
)
from control_plane.devices.tokens import hash_token, new_token
from control_plane.notices.services import grant_channel
from fleet_common.wire.answers import RejectedReadings
from fleet_common.wire.heartbeat import Enrollment, Heartbeat
from fleet_common.wire.reports import EngineReport

__all__ = [
    "HeartbeatOutcome",
    "Pruned",
    "admit_heartbeat",
    "clear_maintenance",
    "create_enrollment_token",
    "delete_device",
    "enroll_device",
    "enroll_device_with_channel",
    "prune_history",
    "record_heartbeat",
    "revoke_enrollment_token",
    "set_maintenance",
    "update_device",
]

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
    engine: EngineReport | None = None,
) -> tuple[Device, str]:
    """Spends one use of the enrollment token on a new device; returns it and its token.

    The device gets its first signed desired state at once (`device_enrolled`: standing
    assignments apply to it), so its first heartbeat converges. Raises `EnrollmentRefused` for an
    unknown, used-up or expired token and ValidationError for a bad name.
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
        name=name, host_version=host_version, token_hash=hash_token(secret), enrolled_with=token
    )
    if engine is not None:
        _set_engine(device, engine)
    device.full_clean()
    device.save()
    device_enrolled.send(sender=Device, device=device)
    return device, secret


@transaction.atomic
def enroll_device_with_channel(
    *, enrollment: Enrollment
) -> tuple[Device, str, dict[str, Any] | None]:
    """`enroll_device`, plus the device's channel grant when it sent a CSR.

    Returns the device, its token and the grant (None without a CSR, or when the control
    plane has no broker: the device then relies on heartbeats). One transaction: a CSR the
    signer refuses (`CertificateRequestRefused`) leaves the enrollment token unspent.
    """
    device, secret = enroll_device(
        enrollment_token=enrollment.enrollment_token,
        name=enrollment.name,
        host_version=enrollment.host_version,
        engine=enrollment.engine,
    )
    if enrollment.channel_csr is None:
        return device, secret, None
    return device, secret, grant_channel(device, enrollment.channel_csr)


@dataclass(frozen=True)
class HeartbeatOutcome:
    """What a heartbeat's answer says besides the interval."""

    desired_envelope: str | None
    """The signed envelope as JSON text, when the device's own sequence is older; else None."""
    rejected_readings: RejectedReadings | None = None


def admit_heartbeat(*, device_token: str, body_bytes: int) -> Found:
    """The device a heartbeat of ``body_bytes`` comes from, if its telemetry budget has room.

    One indexed lookup, before the body is read. Raises `UnknownDeviceToken` and
    `TelemetryRefused`.
    """
    found = find_device(hash_token(device_token))
    if found is None:
        raise UnknownDeviceToken("unknown device token (was the device deleted? enroll it again)")
    check_budget(found, body_bytes, timezone.now())
    return found


def record_heartbeat(
    *,
    device_token: str,
    heartbeat: Heartbeat,
    body_bytes: int = 0,
    device: Found | None = None,
) -> HeartbeatOutcome:
    """Stores what a device reported; returns its signed desired state if it lacks it.

    The hot path of the control plane: one indexed lookup (skipped when the caller already
    admitted the heartbeat as ``device``), one UPDATE of the device row that also charges
    ``body_bytes`` to its telemetry budget, and one INSERT each for readings, events and log
    lines, and one upsert of health counters, in plain SQL (see `heartbeat_store`). Readings
    dated too far ahead are left out and named in the outcome. Raises `UnknownDeviceToken`
    and `TelemetryRefused` (nothing stored).
    """
    found = device or admit_heartbeat(device_token=device_token, body_bytes=body_bytes)
    check_reading_count(len(heartbeat.readings))
    now = timezone.now()
    readings, rejected = split_future(heartbeat.readings, now)
    desired_envelope = found.desired_envelope
    desired_sequence = found.desired_sequence
    desired_versions = found.desired_versions
    if heartbeat.engine is not None and heartbeat.engine.key != found.engine_key:
        desired_envelope, desired_versions, desired_sequence = _engine_changed(
            found.id, heartbeat.engine
        )
    reported = heartbeat.desired_sequence
    if reported is not None and reported > desired_sequence:
        desired_envelope, desired_sequence = _caught_up(found.id, reported)
    last_reading = None
    if readings:
        newest = max(readings, key=lambda r: r.taken_at)
        last_reading = {
            "source": newest.source,
            "temperature_c": newest.temperature_c,
            "humidity_pct": newest.humidity_pct,
            "taken_at": newest.taken_at.isoformat(),
        }
    running = {plugin.name: plugin for plugin in heartbeat.plugins}
    row = DeviceRow(
        seen_at=now,
        host_version=heartbeat.host_version,
        plugins=[plugin.to_json() for plugin in heartbeat.plugins],
        drifting=any(
            name not in running or running[name].version != version
            for name, version in desired_versions.items()
        ),
        failing=any(plugin.state not in (None, "running") for plugin in heartbeat.plugins),
        last_reading=last_reading,
        vitals=None if heartbeat.vitals is None else heartbeat.vitals.to_json(),
        body_bytes=body_bytes,
        budget_bytes=settings.TELEMETRY_BYTES_PER_HOUR,
    )
    try:
        store_heartbeat(
            found.id,
            row,
            readings=readings,
            events=heartbeat.events,
            log_lines=heartbeat.log_tail,
            health=heartbeat.health,
        )
    except OverBudget:
        # Another heartbeat of this device spent the budget after the lookup.
        start = found.telemetry_window_start
        current = start is not None and now - start < TELEMETRY_WINDOW
        raise TelemetryRefused(
            f"device {found.name} has spent its telemetry budget for this hour "
            f"({settings.TELEMETRY_BYTES_PER_HOUR} bytes, TELEMETRY_BYTES_PER_HOUR)",
            retry_after_s=retry_after(start if start is not None and current else now, now),
        ) from None
    if found.in_rollout:
        heartbeat_recorded.send(sender=Device, device_id=found.id)
    current = heartbeat.desired_sequence is not None and (
        heartbeat.desired_sequence >= desired_sequence
    )
    return HeartbeatOutcome(
        desired_envelope=None if current or not desired_envelope else desired_envelope,
        rejected_readings=rejected,
    )


def _set_engine(device: Device, engine: EngineReport) -> None:
    device.engine_key = engine.key
    device.engine_target = engine.target
    device.engine_features = list(engine.features)


@transaction.atomic
def _engine_changed(device_id: Any, engine: EngineReport) -> tuple[str, dict[str, str], int]:
    """A device reports another engine (a host upgrade): its artifacts change with it."""
    device = Device.objects.select_for_update().get(pk=device_id)
    log.info("device %s now reports engine key %s (%s)", device, engine.key[:16], engine.target)
    _set_engine(device, engine)
    device.save(update_fields=["engine_key", "engine_target", "engine_features"])
    engine_changed.send(sender=Device, device=device)
    device.refresh_from_db(fields=["desired_envelope", "desired_versions", "desired_sequence"])
    return device.desired_envelope, device.desired_versions, device.desired_sequence


@transaction.atomic
def _caught_up(device_id: Any, reported: int) -> tuple[str, int]:
    """The device holds a sequence above the one on record: sign its state again above it.

    Without this, a control plane restored from an older backup would offer states the
    device refuses as older than what it accepted, until the sequence caught up by itself.
    """
    device = Device.objects.select_for_update().get(pk=device_id)
    if device.desired_sequence >= reported:  # another heartbeat of it got here first
        return device.desired_envelope, device.desired_sequence
    log.warning(
        "device %s holds desired state %d, above the %d on record (a restored database?): "
        "signing its state again above it",
        device,
        reported,
        device.desired_sequence,
    )
    device.desired_sequence, device.desired_envelope = reported, ""
    device.save(update_fields=["desired_sequence", "desired_envelope"])
    device_ahead.send(sender=Device, device=device)
    device.refresh_from_db(fields=["desired_envelope", "desired_sequence"])
    return device.desired_envelope, device.desired_sequence


@transaction.atomic
def update_device(*, device: Device, name: str, tags: Iterable[Tag]) -> Device:
    """Renames or re-tags a device; new tags can change its desired state."""
    device.name = name
    device.full_clean()
    device.save(update_fields=["name"])
    wanted = {tag.pk for tag in tags}
    if wanted != set(device.tags.values_list("pk", flat=True)):
        device.tags.set(wanted)
        device_retagged.send(sender=Device, device=device)
    return device


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
