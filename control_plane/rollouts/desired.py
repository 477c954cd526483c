"""Each device's signed desired state, rebuilt from its releases; standing assignments.

A device's desired state lists the `DeviceRelease` rows it has, each with its compiled
artifact for the device's engine key. It is re-signed only when that list changes; a
changed device gets the next sequence number and a notice (`record_notices`) in the same
transaction. Rebuilding goes in chunks of ``settings.NOTICE_BATCH`` devices, and each chunk
in two steps so the fleet's rows are never held while work is done:

1. `plan_chunk`, outside any transaction: reads the chunk's devices, releases and signed
   artifacts, and signs the new envelopes (what costs: JSON, Ed25519, per device). It notes
   what each envelope was computed from (a `Basis`: the device's sequence, engine key and
   release ids, and the artifacts' ids).
2. `write_chunk`, in a short transaction: locks the chunk's device rows (by pk, so two
   chunks never deadlock), re-reads each basis and writes only the envelopes whose basis is
   unchanged, with one prepared UPDATE (`bulk.prepare_updates`), records their notices and
   clears their stale markers. A device that changed meanwhile is marked stale for the next
   pass: never written from an old basis, never lost.

On SQLite (one writer for the whole database) the write step is what heartbeats wait for,
so it does nothing but compare and write. Work that cannot be done at once is recorded as
`StaleDesiredState` rows in the transaction that changed the releases, and `refresh_stale`
(a job, and the minute tick) rebuilds them chunk by chunk: a worker that dies in between
leaves the rest on record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django_q.tasks import async_task

from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact
from control_plane.builds.selectors import artifacts_for, signed_artifacts
from control_plane.devices.models import Device
from control_plane.notices.services import record_notices
from control_plane.plugins.models import PluginVersion, Release
from control_plane.rollouts.bulk import RowWrites, prepare_updates
from control_plane.rollouts.choices import AssignmentTarget
from control_plane.rollouts.models import Assignment, DeviceRelease, StaleDesiredState
from control_plane.signing import load_signing_key, sign_desired_state

log = logging.getLogger(__name__)

REFRESH_JOB = "control_plane.rollouts.jobs.refresh_stale_desired_states"
STALE_PASSES = 3
"""`refresh_stale` goes over the markers at most this often per run; devices that kept
changing under it are left to the next run (the minute tick)."""
SQLITE_CHUNK = 100
"""~10 ms of writing on SQLite (500 took ~50 ms): what a heartbeat may wait for."""
WRITTEN_FIELDS = ("desired_sequence", "desired_envelope", "desired_versions", "drifting")


@dataclass(frozen=True)
class Basis:
    """What one device's new desired state was computed from; written only if unchanged."""

    sequence: int
    engine_key: str
    releases: frozenset[int]


@dataclass(frozen=True)
class ChunkPlan:
    """One chunk's new desired states, computed outside any transaction."""

    ids: list[Any]
    bases: dict[Any, Basis]
    """Per device that existed when planned."""
    changes: dict[Any, Device]
    """Per device whose desired state changes (unsaved, with the new values); the others
    are current."""
    writes: RowWrites
    """The UPDATE of each changed device, ready to run."""
    artifacts: frozenset[tuple[int, int, str]]
    """(artifact id, version id, engine key) of every signed artifact of the chunk's versions."""


def refresh_desired_states(*, devices: Iterable[Device | UUID]) -> list[Device]:
    """Re-signs, now, the desired state of each device (or device id) whose releases changed.

    For the few devices a request touches (an enrollment, a new tag, a new engine), usually
    inside the request's transaction: one chunk per ``NOTICE_BATCH`` devices, each written
    in its own savepoint. Returns the changed devices (their new sequence and envelope).
    """
    ids = sorted({device.pk if isinstance(device, Device) else device for device in devices})
    changed: list[Device] = []
    size = chunk_size()
    for start in range(0, len(ids), size):
        plan = plan_chunk(ids[start : start + size])
        with transaction.atomic():
            changed += write_chunk(plan)
    return changed


def mark_stale(device_ids: Iterable[Any]) -> int:
    """Records, in the caller's transaction, that these devices' releases changed, and queues
    `refresh_stale` (committed with the rows, or run at once when jobs are synchronous).

    For changes that may reach the whole fleet (a rollback, an uninstall, newly signed
    artifacts): the caller's transaction stays as short as its own writes. Returns how many.
    """
    ids = sorted(set(device_ids))
    if not ids:
        return 0
    StaleDesiredState.objects.bulk_create(
        [StaleDesiredState(device_id=pk) for pk in ids], batch_size=1000, ignore_conflicts=True
    )
    async_task(REFRESH_JOB, group="desired-state", task_name="refresh desired states")
    return len(ids)


def refresh_stale() -> int:
    """Rebuilds every stale desired state, in device id order, one chunk per transaction.

    Safe to run twice at once: a chunk the other run wrote first fails its basis check and
    is looked at again in the next pass. Returns how many devices got a new desired state.
    """
    changed = 0
    for _ in range(STALE_PASSES):
        after: Any = None
        while True:
            markers = StaleDesiredState.objects.order_by("device_id")
            if after is not None:
                markers = markers.filter(device_id__gt=after)
            ids = list(markers.values_list("device_id", flat=True)[: chunk_size()])
            if not ids:
                break
            plan = plan_chunk(ids)
            with transaction.atomic():
                changed += len(write_chunk(plan))
            after = ids[-1]
        if not StaleDesiredState.objects.exists():
            break
    return changed


def chunk_size() -> int:
    """Devices per write transaction: ``NOTICE_BATCH``, at most ``SQLITE_CHUNK`` on SQLite,
    where a write transaction holds the whole database (every heartbeat waits for it)."""
    if connection.vendor == "sqlite":
        return min(int(settings.NOTICE_BATCH), SQLITE_CHUNK)
    return int(settings.NOTICE_BATCH)


def plan_chunk(ids: Sequence[Any], *, shipping: Release | None = None) -> ChunkPlan:
    """The new desired states of these devices, signed, with the basis of each; no writes.

    ``shipping`` is a release the caller writes to every one of these devices in the same
    transaction as `write_chunk` (a wave's delivery): planned as if already written.
    Run it outside any transaction (on SQLite a transaction holds the whole database).
    """
    devices = list(
        Device.objects.filter(pk__in=list(ids))
        .order_by("pk")
        .only("pk", "desired_sequence", "engine_key", "desired_envelope", "reported_plugins")
    )
    releases: dict[Any, dict[str, Release]] = {}
    for row in DeviceRelease.objects.filter(device_id__in=list(ids)).select_related(
        "release__version", "plugin"
    ):
        releases.setdefault(row.device_id, {})[row.plugin.name] = row.release
    if shipping is not None:
        for device in devices:
            releases.setdefault(device.pk, {})[shipping.plugin.name] = shipping
    versions = {release.version_id for mine in releases.values() for release in mine.values()}
    artifacts = _artifact_ids(versions)  # before the envelopes, so a newer one is a change
    signed = signed_artifacts(versions)
    key = None
    bases: dict[Any, Basis] = {}
    changes: dict[Any, Device] = {}
    for device in devices:
        have = releases.get(device.pk, {})
        mine = [have[name] for name in sorted(have)]
        bases[device.pk] = Basis(
            device.desired_sequence, device.engine_key, frozenset(r.pk for r in mine)
        )
        envelopes = [release.envelope for release in mine]
        compiled = artifacts_for(signed, [r.version_id for r in mine], device.engine_key)
        current = device.desired_statement
        if (
            current is not None
            and current["releases"] == envelopes
            and current.get("compiled", []) == compiled
        ):
            continue
        key = key or load_signing_key()
        sequence = device.desired_sequence + 1
        envelope = sign_desired_state(str(device.pk), sequence, envelopes, compiled, key)
        named = {name: release.version.version for name, release in have.items()}
        running = {str(p.get("name")): p.get("version") for p in device.reported_plugins}
        changes[device.pk] = Device(
            pk=device.pk,
            desired_sequence=sequence,
            desired_envelope=json.dumps(envelope, separators=(",", ":")),
            desired_versions=named,
            drifting=any(running.get(n) != v for n, v in named.items()),
        )
    writes = prepare_updates(
        Device,
        WRITTEN_FIELDS,
        ((pk, [getattr(d, name) for name in WRITTEN_FIELDS]) for pk, d in changes.items()),
    )
    return ChunkPlan(list(ids), bases, changes, writes, artifacts)


def write_chunk(plan: ChunkPlan) -> list[Device]:
    """Writes a planned chunk in the caller's transaction; returns the changed devices.

    Locks the devices' rows in pk order, then writes each device whose basis is what the
    plan saw (its notice with it) and clears its stale marker; marks the others stale.
    The device's ``drifting`` hint is computed from the plugins it reported when planned:
    its next heartbeat sets it again.
    """
    ids = plan.ids
    now = {
        pk: (sequence, engine_key)
        for pk, sequence, engine_key in Device.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "desired_sequence", "engine_key")
    }
    releases: dict[Any, set[int]] = {pk: set() for pk in now}
    for device_id, release_id in DeviceRelease.objects.filter(device_id__in=ids).values_list(
        "device_id", "release_id"
    ):
        releases[device_id].add(release_id)
    versions = Release.objects.filter(
        pk__in={r for mine in releases.values() for r in mine}
    ).values_list("version_id", flat=True)
    artifacts_same = _artifact_ids(set(versions)) == plan.artifacts
    current, moved = [], []
    for pk, (sequence, engine_key) in now.items():
        basis = plan.bases.get(pk)
        if (
            artifacts_same
            and basis is not None
            and basis == Basis(sequence, engine_key, frozenset(releases[pk]))
        ):
            current.append(pk)
        else:
            moved.append(pk)
    changed = [plan.changes[pk] for pk in current if pk in plan.changes]
    plan.writes.run(d.pk for d in changed)
    record_notices(changed)
    StaleDesiredState.objects.filter(device_id__in=current).delete()
    if moved:
        log.info("%d device(s) changed while their desired state was signed: again", len(moved))
        mark_stale(moved)
    if changed:
        log.info("new desired state for %d device(s)", len(changed))
    return changed


def _artifact_ids(version_ids: set[int]) -> frozenset[tuple[int, int, str]]:
    """Which signed artifacts of these versions exist (what `signed_artifacts` reads)."""
    return frozenset(
        CompiledArtifact.objects.filter(
            version_id__in=list(version_ids), state=ArtifactState.READY, envelope__isnull=False
        ).values_list("pk", "version_id", "engine_key")
    )


def latest_release(version: PluginVersion) -> Release:
    """The newest release of ``version``: what a device that should run it gets."""
    return Release.objects.filter(version=version).order_by("-serial")[0]


def covers(assignment: Assignment, device: Device, tag_ids: set[int]) -> bool:
    if assignment.target == AssignmentTarget.DEVICE:
        return assignment.device_id == device.pk
    if assignment.target == AssignmentTarget.TAG:
        return assignment.tag_id in tag_ids
    return True


@transaction.atomic
def apply_standing_assignments(device: Device) -> list[str]:
    """Gives ``device`` the assigned version of each plugin it has no release of yet.

    Returns the plugins it got. A plugin the device already has is left alone: standing
    rules bring devices that join up to date, they never move or remove a release.
    """
    have = set(DeviceRelease.objects.filter(device=device).values_list("plugin_id", flat=True))
    tag_ids = set(device.tags.values_list("pk", flat=True))
    chosen: dict[int, Assignment] = {}
    for rule in Assignment.objects.select_related("plugin_version__plugin"):
        plugin_id = rule.plugin_version.plugin_id
        if plugin_id in have or not covers(rule, device, tag_ids):
            continue
        current = chosen.get(plugin_id)
        if current is None or _rank(rule) > _rank(current):
            chosen[plugin_id] = rule
    for plugin_id, rule in chosen.items():
        DeviceRelease.objects.create(
            device=device, plugin_id=plugin_id, release=latest_release(rule.plugin_version)
        )
    return sorted(rule.plugin_version.plugin.name for rule in chosen.values())


def _rank(assignment: Assignment) -> tuple[int, object, int]:
    return assignment.specificity, assignment.created_at, assignment.pk
