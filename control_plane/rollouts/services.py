"""Every write to rollouts goes through here: start, advance, halt, pause, roll back, uninstall.

Operators' actions (create, pause, resume, abort, roll back) and the engine's verdicts
(`evaluate`, run by the background worker) take the rollout's row lock, so an operator
and the engine never act on the same rollout at once, and each records a `Decision`
with its reason and numbers.

Nothing that grows with the fleet runs in a request: creating a rollout records it and
queues the engine's job, which plans the waves; a started wave is delivered by
`deliver_wave` in chunks (`desired.chunk_size`), each chunk read and signed outside any
transaction and written by one short transaction that writes its devices' releases and
desired states and moves the wave's cursor, so a worker that dies mid-wave leaves a wave
the next job finishes. The engine judges a wave only once every device of it was delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from control_plane.devices.models import Device, DeviceEvent, PluginHealth, Tag
from control_plane.plugins.models import Plugin, PluginVersion, Release
from control_plane.plugins.services import issue_release
from control_plane.rollouts.bulk import RowWrites, prepare_updates, prepare_upserts
from control_plane.rollouts.choices import (
    ACTIVE,
    FAILED_STATES,
    AssignmentTarget,
    DecisionKind,
    MemberState,
    RolloutStatus,
    RolloutTarget,
    WaveStatus,
)
from control_plane.rollouts.desired import (
    ChunkPlan,
    chunk_size,
    latest_release,
    mark_stale,
    plan_chunk,
    write_chunk,
)
from control_plane.rollouts.engine import (
    HEALTH_COUNTERS,
    Observation,
    Outcome,
    Thresholds,
    classify,
    health_delta,
    judge,
)
from control_plane.rollouts.models import Assignment, Decision, DeviceRelease, Member, Rollout, Wave
from control_plane.rollouts.targets import Target
from control_plane.rollouts.waves import Candidate, plan, wave_sizes

log = logging.getLogger(__name__)

EVALUATE_JOB = "control_plane.rollouts.jobs.evaluate_rollout"
EVALUATION_DEBOUNCE = timedelta(seconds=1)
FAILURE_EVENTS = ("refused", "reverted", "quarantined")


@transaction.atomic
def create_rollout(
    *,
    version: PluginVersion,
    target: str,
    tag: Tag | None = None,
    devices: Sequence[Device] = (),
    created_by: User | None = None,
    **settings: Any,
) -> Rollout:
    """Records a rollout of an approved version and queues the engine's job, which plans its
    waves and starts the canary (now, or at ``scheduled_at``); returns at once.

    ``settings`` are `Rollout` fields (waves, soak_s, thresholds, auto_rollback, ...).
    Raises ValidationError naming the problem: a version not approved, a bad target or
    wave plan, or another active rollout of the plugin to the same target.
    """
    plugin = Plugin.objects.select_for_update().get(pk=version.plugin_id)
    rollout = Rollout(
        plugin=plugin, version=version, target=target, tag=tag, created_by=created_by, **settings
    )
    rollout.full_clean()
    if target == RolloutTarget.DEVICES and not devices:
        raise ValidationError({"target_devices": "name at least one device"})
    busy = _active_on_same_target(rollout, devices)
    if busy is not None:
        raise ValidationError(
            f"{busy} is {busy.get_status_display()}; finish, abort or roll it back first "
            "(one active rollout per plugin and target)"
        )
    rollout.save()
    if devices:
        rollout.target_devices.set(devices)
    _decide(rollout, DecisionKind.CREATED, f"created by {created_by or 'a script'}", by=created_by)
    if rollout.scheduled_at is None or rollout.scheduled_at <= timezone.now():
        _queue_evaluation(rollout.pk)
        rollout.refresh_from_db()  # synchronous jobs (tests) have run it already
    return rollout


def _queue_evaluation(rollout_id: int) -> None:
    """Queues the engine's job in the caller's transaction: it commits with the rows it
    reads, and is lost with them."""
    async_task(EVALUATE_JOB, rollout_id, group="rollout", task_name=f"rollout {rollout_id}")


def assign_now(
    *,
    version: PluginVersion,
    target: str,
    tag: Tag | None = None,
    devices: Sequence[Device] = (),
    created_by: User | None = None,
) -> Rollout:
    """Ships ``version`` to the whole target at once: a one-wave rollout that gates nothing.

    For a lab, a single device or a script; a fleet takes `create_rollout`'s waves.
    """
    return create_rollout(
        version=version,
        target=target,
        tag=tag,
        devices=devices,
        created_by=created_by,
        waves=[100],
        soak_s=0,
        success_pct=0.0,
        auto_rollback=False,
    )


def _active_on_same_target(rollout: Rollout, devices: Sequence[Device]) -> Rollout | None:
    active = Rollout.objects.filter(plugin=rollout.plugin, status__in=ACTIVE, target=rollout.target)
    if rollout.target == RolloutTarget.TAG:
        active = active.filter(tag=rollout.tag)
    elif rollout.target == RolloutTarget.DEVICES:
        active = active.filter(target_devices__in=list(devices)).distinct()
    return active.exclude(pk=rollout.pk).first()


def target_devices_of(target: Target) -> QuerySet[Device]:
    """The devices a parsed command-line target names."""
    if target.kind == RolloutTarget.TAG:
        return Device.objects.filter(tags=target.tag)
    if target.kind == RolloutTarget.DEVICES:
        return Device.objects.filter(pk__in=[d.pk for d in target.devices])
    return Device.objects.all()


def target_devices(rollout: Rollout) -> QuerySet[Device]:
    if rollout.target == RolloutTarget.TAG:
        return Device.objects.filter(tags=rollout.tag_id)
    if rollout.target == RolloutTarget.DEVICES:
        return rollout.target_devices.all()
    return Device.objects.all()


def _start(rollout: Rollout) -> None:
    """Plans the waves over the target as it is now and starts the canary."""
    now = timezone.now()
    devices = list(target_devices(rollout).prefetch_related("tags"))
    current = {
        row.device_id: row.release_id
        for row in DeviceRelease.objects.filter(device__in=devices, plugin=rollout.plugin)
    }
    candidates = [
        Candidate(str(d.pk), d.engine_target, min((t.name for t in d.tags.all()), default=""))
        for d in devices
    ]
    ordered = plan(rollout.pk, candidates)
    by_id = {str(d.pk): d for d in devices}
    sizes = wave_sizes(len(ordered), rollout.waves)
    percents = [p for p in rollout.waves][: len(sizes)] or [100]
    members, position = [], 0
    for index, size in enumerate(sizes):
        Wave.objects.create(rollout=rollout, index=index, percent=percents[index], size=size)
        for candidate in ordered[position : position + size]:
            device = by_id[candidate.device_id]
            members.append(
                Member(
                    rollout=rollout,
                    device=device,
                    wave=index,
                    previous_release_id=current.get(device.pk),
                )
            )
        position += size
    Member.objects.bulk_create(members, batch_size=1000)
    rollout.release = _release_to_ship(rollout)
    rollout.status = RolloutStatus.RUNNING
    rollout.started_at = now
    rollout.save(update_fields=["release", "status", "started_at"])
    _decide(
        rollout,
        DecisionKind.STARTED,
        f"{len(members)} devices in {len(sizes)} waves "
        f"({', '.join(str(s) for s in sizes) or 'none'})",
        counts={"devices": len(members), "waves": len(sizes)},
    )
    if sizes:
        _start_wave(rollout, 0, now)


def _release_to_ship(rollout: Rollout) -> Release:
    """The version's newest release, or a new one when the plugin has a higher serial
    (a rollback since): devices never accept a lower serial than one they installed."""
    release = latest_release(rollout.version)
    if Release.objects.filter(plugin=rollout.plugin, serial__gt=release.serial).exists():
        release = issue_release(version=rollout.version, reason=f"shipped by rollout #{rollout.pk}")
    return release


def _start_wave(rollout: Rollout, index: int, now: datetime) -> None:
    """Marks the wave running; `deliver_wave` (the same job, after this transaction) writes
    its devices' releases and desired states."""
    wave = Wave.objects.select_for_update().get(rollout=rollout, index=index)
    release = rollout.release
    assert release is not None
    wave.status, wave.started_at = WaveStatus.RUNNING, now
    wave.delivered, wave.delivered_through, wave.delivered_at = 0, None, None
    wave.save(
        update_fields=["status", "started_at", "delivered", "delivered_through", "delivered_at"]
    )
    _decide(
        rollout,
        DecisionKind.WAVE_STARTED,
        f"{wave.label}: {wave.size} devices get {release}",
        wave=index,
        counts={"devices": wave.size},
    )


def deliver_wave(*, rollout_id: int) -> bool:
    """Delivers the rollout's running wave, chunk by chunk; True when it finished one now.

    Each chunk is planned outside any transaction (its members, their baselines, the signed
    desired states: `plan_chunk`), then written in one short transaction: it locks the wave
    row (operators' actions wait for at most one write), checks the cursor has not moved,
    then locks the chunk's device rows and writes their `DeviceRelease` rows, baselines and
    desired states (with their notices), and advances the cursor. It stops when the rollout
    is no longer running (paused, aborted, rolled back): a resume continues.
    """
    while True:
        wave = (
            Wave.objects.filter(
                rollout_id=rollout_id, status=WaveStatus.RUNNING, delivered_at__isnull=True
            )
            .order_by("index")
            .first()
        )
        if wave is None:
            return False
        rollout = Rollout.objects.select_related(
            "plugin", "release__plugin", "release__version", "version"
        ).get(pk=rollout_id)
        if rollout.status != RolloutStatus.RUNNING:
            return False
        chunk = _plan_chunk(rollout, wave)
        with transaction.atomic():
            locked = Wave.objects.select_for_update().get(pk=wave.pk)
            status = Rollout.objects.values_list("status", flat=True).get(pk=rollout_id)
            if (
                status != RolloutStatus.RUNNING
                or locked.status != WaveStatus.RUNNING
                or locked.delivered_at is not None
                or locked.delivered_through != wave.delivered_through
            ):
                continue  # moved on while planned: plan again from where it stands
            if _write_chunk(rollout, locked, chunk):
                return True


@dataclass(frozen=True)
class _Chunk:
    """The next members of a wave after its cursor, and the writes that deliver them."""

    members: list[Member]
    baselines: RowWrites
    """Each member's health counters now, and its state back to pending."""
    releases: RowWrites
    """Each device's `DeviceRelease` row of the plugin, set to the rollout's release."""
    plan: ChunkPlan


def _plan_chunk(rollout: Rollout, wave: Wave) -> _Chunk:
    """The next ``NOTICE_BATCH`` members of the wave after its cursor, and their new desired
    states as if the rollout's release were written: all reads, no transaction."""
    release = rollout.release
    assert release is not None
    members = list(
        Member.objects.filter(
            rollout=rollout, wave=wave.index, pk__gt=wave.delivered_through or 0
        ).order_by("pk")[: chunk_size()]
    )
    ids = [m.device_id for m in members]
    health = _health(rollout, ids)
    now = timezone.now()
    return _Chunk(
        members,
        prepare_updates(
            Member,
            ("baseline", "state"),
            ((m.pk, (health.get(m.device_id, {}), MemberState.PENDING)) for m in members),
        ),
        prepare_upserts(
            DeviceRelease,
            ("device", "plugin", "release", "rollout", "since"),
            ("device", "plugin"),
            ((pk, (pk, rollout.plugin_id, release.pk, rollout.pk, now)) for pk in ids),
        ),
        plan_chunk(ids, shipping=release),
    )


def _write_chunk(rollout: Rollout, wave: Wave, chunk: _Chunk) -> bool:
    """Writes a planned chunk in the caller's transaction; True when the wave is delivered."""
    members = chunk.members
    ids = [m.device_id for m in members]
    now = timezone.now()
    if members:
        list(  # this chunk's device rows, locked in pk order before any write
            Device.objects.select_for_update().filter(pk__in=ids).order_by("pk").values("pk")
        )
        chunk.baselines.run()
        chunk.releases.run()
        Device.objects.filter(pk__in=ids).update(in_rollout=True)
        write_chunk(chunk.plan)
        wave.delivered += len(members)
        wave.delivered_through = members[-1].pk
    done = len(members) < chunk_size()
    if done:
        wave.delivered_at = now
    wave.save(update_fields=["delivered", "delivered_through", "delivered_at"])
    if done:
        assert wave.started_at is not None
        _decide(
            rollout,
            DecisionKind.DELIVERED,
            f"{wave.label}: desired states of {wave.delivered} devices written in "
            f"{(now - wave.started_at).total_seconds():.1f} s",
            wave=wave.index,
            counts={"delivered": wave.delivered},
        )
    return done


def _health(rollout: Rollout, device_ids: Iterable[Any]) -> dict[Any, dict[str, Any]]:
    """The version's summed health counters per device (self-check included)."""
    found: dict[Any, dict[str, Any]] = {}
    for row in PluginHealth.objects.filter(
        device_id__in=list(device_ids), plugin=rollout.plugin.name, version=rollout.version.version
    ).values("device_id", "self_check", *HEALTH_COUNTERS):
        found[row.pop("device_id")] = row
    return found


def request_evaluation(*, device_id: Any) -> None:
    """A device of a running wave heartbeated: queue its rollouts' evaluation, at most one
    per rollout per second (the heartbeat path must stay cheap)."""
    now = timezone.now()
    rollout_ids = list(
        Member.objects.filter(
            device_id=device_id, rollout__status=RolloutStatus.RUNNING
        ).values_list("rollout_id", flat=True)
    )
    for rollout_id in rollout_ids:
        with transaction.atomic():
            due = (
                Rollout.objects.select_for_update(skip_locked=True)
                .filter(pk=rollout_id)
                .filter(
                    Q(evaluation_requested_at__isnull=True)
                    | Q(evaluation_requested_at__lt=now - EVALUATION_DEBOUNCE)
                )
                .values_list("pk", flat=True)
            )
            if not due.exists():
                continue  # debounced, or the engine holds it now: a later heartbeat asks
            Rollout.objects.filter(pk=rollout_id).update(evaluation_requested_at=now)
            _queue_evaluation(rollout_id)


def evaluate(rollout_id: int) -> Rollout:
    """The engine's job: a step (start a due rollout, judge the running wave), then the
    delivery of any wave it started, then a step again, until nothing is left to deliver."""
    rollout = _step(rollout_id)
    while deliver_wave(rollout_id=rollout_id):
        rollout = _step(rollout_id)
    return rollout


@transaction.atomic
def _step(rollout_id: int) -> Rollout:
    """Classifies the current wave's devices and acts on the verdict, under the row lock."""
    rollout = (
        Rollout.objects.select_for_update().select_related("plugin", "version").get(pk=rollout_id)
    )
    now = timezone.now()
    Rollout.objects.filter(pk=rollout.pk).update(evaluation_requested_at=None)
    if rollout.status == RolloutStatus.SCHEDULED and (
        rollout.scheduled_at is None or rollout.scheduled_at <= now
    ):
        _start(rollout)
    if rollout.status == RolloutStatus.RUNNING:
        _evaluate_locked(rollout, now)
    return rollout


def _evaluate_locked(rollout: Rollout, now: datetime) -> None:
    wave = Wave.objects.filter(rollout=rollout, status=WaveStatus.RUNNING).order_by("index").first()
    if wave is None:
        if not Wave.objects.filter(rollout=rollout, status=WaveStatus.PENDING).exists():
            _complete(rollout, now)
        return
    if wave.delivered_at is None:
        return  # still being delivered: `deliver_wave` runs after this step
    limits = Thresholds.of(rollout)
    states = _classify_wave(rollout, wave, now, limits)
    judgement = judge(states, limits)
    if judgement.outcome is Outcome.HALT:
        wave.status, wave.finished_at = WaveStatus.FAILED, now
        wave.save(update_fields=["status", "finished_at"])
        _halt(rollout, wave, judgement.detail, judgement.counts, now)
        return
    if judgement.outcome is Outcome.PASS:
        wave.status, wave.finished_at = WaveStatus.PASSED, now
        wave.save(update_fields=["status", "finished_at"])
        _decide(
            rollout,
            DecisionKind.WAVE_PASSED,
            f"{wave.label} passed: {judgement.detail}",
            wave=wave.index,
            counts=judgement.counts,
        )
        following = Wave.objects.filter(rollout=rollout, index=wave.index + 1).first()
        if following is None:
            _complete(rollout, now)
        else:
            _start_wave(rollout, following.index, now)
            _evaluate_locked(rollout, now)


def _classify_wave(rollout: Rollout, wave: Wave, now: datetime, limits: Thresholds) -> list[str]:
    """Updates each device's state in the running wave; returns the states."""
    assert wave.started_at is not None
    members = list(Member.objects.filter(rollout=rollout, wave=wave.index).select_related("device"))
    ids = [m.device_id for m in members]
    name, version = rollout.plugin.name, rollout.version.version
    failures: dict[Any, list[tuple[str, str]]] = {}
    for device_id, kind, detail in (
        DeviceEvent.objects.filter(
            device_id__in=ids,
            plugin=name,
            version=version,
            kind__in=FAILURE_EVENTS,
            at__gte=wave.started_at,
        )
        .order_by("at")
        .values_list("device_id", "kind", "detail")
    ):
        failures.setdefault(device_id, []).append((kind, detail))
    health = _health(rollout, ids)
    changed, skipped = [], []
    for member in members:
        running = next((p for p in member.device.reported_plugins if p.get("name") == name), None)
        counters = health.get(member.device_id, {})
        seen = Observation(
            state=member.state,
            installed_at=member.installed_at,
            last_seen=member.device.last_seen,
            running_version=running.get("version") if running else None,
            running_state=running.get("state") if running else None,
            failures=tuple(failures.get(member.device_id, ())),
            health=health_delta(counters, member.baseline),
            self_check=str(counters.get("self_check", "")),
        )
        verdict = classify(seen, version, wave.started_at, now, limits)
        if (verdict.state, verdict.installed_at) != (member.state, member.installed_at):
            if verdict.state == MemberState.SKIPPED:
                skipped.append(member.device.name)
            member.state = verdict.state
            member.reason = verdict.reason or member.reason
            member.installed_at = verdict.installed_at
            changed.append(member)
    if changed:
        Member.objects.bulk_update(changed, ["state", "reason", "installed_at"], batch_size=1000)
        states = [m.state for m in members]
        _decide(
            rollout,
            DecisionKind.PROGRESS,
            f"{wave.label}: " + ", ".join(f"{n} {s}" for s, n in _count(states).items()),
            wave=wave.index,
            counts=_count(states),
        )
    if skipped:
        _decide(
            rollout,
            DecisionKind.SKIPPED,
            f"{wave.label}: not waiting any longer for {', '.join(sorted(skipped)[:20])}"
            + (f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""),
            wave=wave.index,
            counts={"skipped": len(skipped)},
        )
    return [m.state for m in members]


def _count(states: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


def _halt(rollout: Rollout, wave: Wave, detail: str, counts: dict[str, int], now: datetime) -> None:
    failed = list(
        Member.objects.filter(rollout=rollout, wave=wave.index, state__in=FAILED_STATES)
        .select_related("device")
        .order_by("device__name")[:5]
    )
    why = "; ".join(f"{m.device.name}: {m.reason}" for m in failed if m.reason)
    rollout.status = RolloutStatus.HALTED
    rollout.halt_reason = f"{wave.label} halted: {detail}" + (f". {why}" if why else "")
    rollout.save(update_fields=["status", "halt_reason"])
    _end_waves(rollout, now)
    _decide(rollout, DecisionKind.HALTED, rollout.halt_reason, wave=wave.index, counts=counts)
    log.warning("%s halted: %s", rollout, rollout.halt_reason)
    if rollout.auto_rollback:
        _roll_back(rollout, "automatic rollback after the halt", None, now)


def _complete(rollout: Rollout, now: datetime) -> None:
    rollout.status, rollout.finished_at = RolloutStatus.COMPLETED, now
    rollout.replaced_rule_version = _standing_rule(rollout, rollout.version)
    rollout.save(update_fields=["status", "finished_at", "replaced_rule_version"])
    _release_devices(rollout)
    total = Member.objects.filter(rollout=rollout).count()
    _decide(rollout, DecisionKind.COMPLETED, f"every wave passed ({total} devices)")


def _standing_rule(rollout: Rollout, version: PluginVersion | None) -> PluginVersion | None:
    """Points the target's standing assignment at ``version`` (None: removes it); returns
    the version it pointed at. Device-list rollouts leave no rule."""
    if rollout.target == RolloutTarget.DEVICES:
        return None
    kind = AssignmentTarget.TAG if rollout.target == RolloutTarget.TAG else AssignmentTarget.ALL
    rules = Assignment.objects.filter(
        plugin_version__plugin=rollout.plugin, target=kind, tag=rollout.tag
    )
    before = rules.select_related("plugin_version").first()
    rules.delete()
    if version is not None:
        Assignment.objects.create(
            plugin_version=version, target=kind, tag=rollout.tag, created_by=rollout.created_by
        )
    return before.plugin_version if before else None


def _end_waves(rollout: Rollout, now: datetime) -> None:
    Wave.objects.filter(rollout=rollout, status=WaveStatus.PENDING).update(
        status=WaveStatus.CANCELLED, finished_at=now
    )
    _release_devices(rollout)


def _release_devices(rollout: Rollout) -> None:
    """Clears the heartbeat hint of devices no running rollout waits on any more."""
    ids = list(Member.objects.filter(rollout=rollout).values_list("device_id", flat=True))
    waiting = set(
        Member.objects.filter(device_id__in=ids, rollout__status=RolloutStatus.RUNNING).values_list(
            "device_id", flat=True
        )
    )
    Device.objects.filter(pk__in=[i for i in ids if i not in waiting]).update(in_rollout=False)


@transaction.atomic
def pause_rollout(*, rollout: Rollout, by: User | None = None) -> Rollout:
    """Stops the engine from starting waves or judging; devices keep what they got."""
    rollout = _locked(rollout)
    _require(rollout, (RolloutStatus.RUNNING, RolloutStatus.SCHEDULED), "pause")
    rollout.status = RolloutStatus.PAUSED
    rollout.save(update_fields=["status"])
    _release_devices(rollout)
    _decide(rollout, DecisionKind.PAUSED, f"paused by {by or 'a script'}", by=by)
    return rollout


@transaction.atomic
def resume_rollout(*, rollout: Rollout, by: User | None = None) -> Rollout:
    """Continues a paused or halted rollout where it stood (a halted wave runs again)."""
    rollout = _locked(rollout)
    _require(rollout, (RolloutStatus.PAUSED, RolloutStatus.HALTED), "resume")
    if rollout.status == RolloutStatus.HALTED:
        wave = Wave.objects.filter(rollout=rollout, status=WaveStatus.FAILED).order_by("-index")[0]
        Wave.objects.filter(pk=wave.pk).update(status=WaveStatus.RUNNING, finished_at=None)
        Wave.objects.filter(rollout=rollout, status=WaveStatus.CANCELLED).update(
            status=WaveStatus.PENDING, finished_at=None
        )
        Member.objects.filter(rollout=rollout, wave=wave.index, state__in=FAILED_STATES).update(
            state=MemberState.PENDING, reason=""
        )
    started = rollout.started_at is not None
    rollout.status = RolloutStatus.RUNNING if started else RolloutStatus.SCHEDULED
    rollout.halt_reason = ""
    rollout.save(update_fields=["status", "halt_reason"])
    running = Wave.objects.filter(rollout=rollout, status=WaveStatus.RUNNING).first()
    if running is not None:
        ids = Member.objects.filter(rollout=rollout, wave=running.index).values("device_id")
        Device.objects.filter(pk__in=ids).update(in_rollout=True)
    _decide(rollout, DecisionKind.RESUMED, f"resumed by {by or 'a script'}", by=by)
    transaction.on_commit(lambda: _queue_evaluation(rollout.pk))
    return rollout


@transaction.atomic
def abort_rollout(*, rollout: Rollout, by: User | None = None) -> Rollout:
    """Stops for good: no more waves. Devices that got the version keep it (roll back to
    undo that); devices of waves not started never get it."""
    rollout = _locked(rollout)
    _require(rollout, ACTIVE, "abort")
    now = timezone.now()
    Wave.objects.filter(rollout=rollout, status=WaveStatus.RUNNING).update(
        status=WaveStatus.CANCELLED, finished_at=now
    )
    rollout.status, rollout.finished_at = RolloutStatus.ABORTED, now
    rollout.save(update_fields=["status", "finished_at"])
    _end_waves(rollout, now)
    _decide(rollout, DecisionKind.ABORTED, f"aborted by {by or 'a script'}", by=by)
    return rollout


@transaction.atomic
def roll_back_rollout(*, rollout: Rollout, by: User | None = None) -> Rollout:
    """Puts every device the rollout reached back on the release it ran before."""
    rollout = _locked(rollout)
    _require(rollout, (*ACTIVE, RolloutStatus.COMPLETED, RolloutStatus.ABORTED), "roll back")
    _roll_back(rollout, f"rolled back by {by or 'a script'}", by, timezone.now())
    return rollout


def _roll_back(rollout: Rollout, why: str, by: User | None, now: datetime) -> None:
    """Each reached device gets its previous version under a new serial, or loses a plugin
    it did not have before; devices the rollout never reached are not touched.

    The wave rows are locked first, so a delivery chunk in flight commits before the rows
    are read; the desired states are rebuilt afterwards (`mark_stale`)."""
    list(Wave.objects.select_for_update().filter(rollout=rollout).order_by("index"))
    reached = list(
        Member.objects.filter(rollout=rollout)
        .filter(
            wave__in=Wave.objects.filter(rollout=rollout, started_at__isnull=False).values("index")
        )
        .select_related("previous_release__version")
    )
    rows = {
        row.device_id: row
        for row in DeviceRelease.objects.filter(
            device_id__in=[m.device_id for m in reached], plugin=rollout.plugin, rollout=rollout
        )
    }
    reissued: dict[int, Release] = {}
    going_back: dict[int, list[int]] = {}
    removed = []
    for member in reached:
        row = rows.get(member.device_id)
        if row is None:
            continue  # a later rollout or an uninstall moved it on: not ours to undo
        previous = member.previous_release
        if previous is None:
            removed.append(row.pk)
        else:
            if previous.version_id not in reissued:
                reissued[previous.version_id] = issue_release(
                    version=previous.version, reason=f"rollback of rollout #{rollout.pk}"
                )
            going_back.setdefault(reissued[previous.version_id].pk, []).append(row.pk)
    for release_id, row_ids in going_back.items():
        for start in range(0, len(row_ids), 1000):
            DeviceRelease.objects.filter(pk__in=row_ids[start : start + 1000]).update(
                release_id=release_id, since=now
            )
    for start in range(0, len(removed), 1000):
        DeviceRelease.objects.filter(pk__in=removed[start : start + 1000]).delete()
    Member.objects.filter(pk__in=[m.pk for m in reached]).update(state=MemberState.ROLLED_BACK)
    Wave.objects.filter(rollout=rollout, status=WaveStatus.RUNNING).update(
        status=WaveStatus.CANCELLED, finished_at=now
    )
    if rollout.status == RolloutStatus.COMPLETED:
        _standing_rule(rollout, rollout.replaced_rule_version)
    rollout.status, rollout.finished_at = RolloutStatus.ROLLED_BACK, now
    rollout.save(update_fields=["status", "finished_at"])
    _end_waves(rollout, now)
    versions = ", ".join(f"{r.version.version} as serial {r.serial}" for r in reissued.values())
    back = sum(map(len, going_back.values()))
    _decide(
        rollout,
        DecisionKind.ROLLED_BACK,
        f"{why}: {back} devices back on {versions or 'their previous version'}"
        + (f", {len(removed)} without the plugin again" if removed else ""),
        by=by,
        counts={"devices": back, "removed": len(removed)},
    )
    mark_stale(m.device_id for m in reached)


@transaction.atomic
def uninstall_plugin(*, plugin: Plugin, devices: Iterable[Device], by: User | None = None) -> int:
    """The one action that removes a plugin from devices; returns how many lose it. Their
    desired states are rebuilt by the worker (`refresh_stale`), chunk by chunk.

    Refused while a rollout of the plugin is active on any of them.
    """
    ids = [device.pk for device in devices]
    busy = (
        Rollout.objects.filter(plugin=plugin, status__in=ACTIVE, members__device_id__in=ids)
        .distinct()
        .first()
    )
    if busy is not None:
        raise ValidationError(f"{busy} is {busy.get_status_display()}; abort it first")
    rows = DeviceRelease.objects.filter(plugin=plugin, device_id__in=ids)
    affected = list(rows.values_list("device_id", flat=True))
    rows.delete()
    Assignment.objects.filter(plugin_version__plugin=plugin, device_id__in=ids).delete()
    mark_stale(affected)
    log.info("uninstalled %s from %d devices (by %s)", plugin, len(affected), by or "a script")
    return len(affected)


@transaction.atomic
def remove_standing_assignment(*, assignment: Assignment) -> None:
    """Stops giving the version to devices that join the target; uninstalls nothing."""
    assignment.delete()


def _locked(rollout: Rollout) -> Rollout:
    return (
        Rollout.objects.select_for_update().select_related("plugin", "version").get(pk=rollout.pk)
    )


def _require(rollout: Rollout, allowed: Sequence[str], action: str) -> None:
    if rollout.status not in allowed:
        raise ValidationError(f"cannot {action} {rollout}: it is {rollout.get_status_display()}")


def _decide(
    rollout: Rollout,
    kind: str,
    detail: str,
    *,
    wave: int | None = None,
    counts: dict[str, int] | None = None,
    by: User | None = None,
) -> Decision:
    decision = Decision.objects.create(
        rollout=rollout,
        at=timezone.now(),
        kind=kind,
        wave=wave,
        detail=detail,
        counts=counts or {},
        by=by,
    )
    log.info("%s: %s", rollout, detail)
    return decision
