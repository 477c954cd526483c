"""The rollout engine on a real database, fed by heartbeats through the real service.

Ten enrolled devices report what they run and their health counters as devices do; the
engine's verdicts (wave passed, halted, rolled back) are checked with their numbers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from control_plane.devices.models import Device
from control_plane.devices.services import record_heartbeat
from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.choices import MemberState, RolloutStatus, RolloutTarget
from control_plane.rollouts.models import Decision, Member, Rollout
from control_plane.rollouts.services import (
    abort_rollout,
    assign_now,
    create_rollout,
    evaluate,
    pause_rollout,
    resume_rollout,
    roll_back_rollout,
)
from control_plane.rollouts.waves import Candidate, plan, wave_sizes
from fleet_common.wire.health import PluginHealth
from fleet_common.wire.heartbeat import EventReport, Heartbeat, PluginReport

pytestmark = pytest.mark.django_db


def releases(device: Device) -> dict[str, tuple[str, int]]:
    """Plugin → (version, serial) of the device's signed desired state."""
    device.refresh_from_db()
    statement = device.desired_statement or {"releases": []}
    found = {}
    for envelope in statement["releases"]:
        release = json.loads(envelope["statement"])
        found[release["plugin"]] = (release["version"], release["serial"])
    return found


def beat(
    secret: str,
    version: str | None,
    *,
    health: PluginHealth | None = None,
    events: tuple[EventReport, ...] = (),
) -> None:
    plugins = () if version is None else (PluginReport("hello", version, "a" * 64, "running"),)
    record_heartbeat(
        device_token=secret,
        heartbeat=Heartbeat(
            host_version="0.1.0",
            engine=None,
            plugins=plugins,
            events=events,
            health=() if health is None else (health,),
        ),
    )


@pytest.fixture
def fleet(enroll, approved):
    """Ten devices running hello 1.0.0, and an approved 1.1.0."""
    devices = [enroll(f"pi-{n:02}") for n in range(10)]
    assign_now(version=approved("1.0.0"), target=RolloutTarget.ALL)
    for _, secret in devices:
        beat(secret, "1.0.0")
    return devices, approved("1.1.0")


def members(rollout: Rollout, wave: int) -> list[Member]:
    return list(rollout.members.filter(wave=wave).select_related("device"))


def secret_of(fleet, member: Member) -> str:  # type: ignore[no-untyped-def]
    devices, _ = fleet
    return next(secret for device, secret in devices if device.pk == member.device_id)


def test_waves_are_a_canary_a_quarter_and_the_rest_spread_over_groups():
    assert wave_sizes(10, [5, 25, 100]) == [1, 2, 7]
    assert wave_sizes(10_000, [5, 25, 100]) == [500, 2000, 7500]
    assert wave_sizes(1, [5, 25, 100]) == [1]
    kitchens = [Candidate(f"k{n}", "aarch64", "kitchen") for n in range(8)]
    greenhouses = [Candidate(f"g{n}", "aarch64", "greenhouse") for n in range(2)]

    ordered = plan(7, kitchens + greenhouses)

    assert {c.group for c in ordered[:2]} == {"kitchen", "greenhouse"}
    assert plan(7, list(reversed(kitchens + greenhouses))) == ordered
    assert plan(8, kitchens + greenhouses) != ordered


def test_a_good_version_passes_every_wave_and_completes(fleet):
    devices, version = fleet
    rollout = create_rollout(version=version, target=RolloutTarget.ALL, soak_s=0)
    for wave in range(3):
        assert rollout.wave_set.get(index=wave).status == "running"
        for member in members(rollout, wave):
            beat(
                secret_of(fleet, member),
                "1.1.0",
                health=PluginHealth("hello", "1.1.0", requests=50),
            )
        evaluate(rollout.pk)
    rollout.refresh_from_db()

    assert rollout.status == RolloutStatus.COMPLETED
    assert {releases(d)["hello"][0] for d, _ in devices} == {"1.1.0"}
    kinds = list(rollout.decisions.values_list("kind", flat=True))
    assert kinds.count("wave-passed") == 3 and kinds[-1] == "completed"


def test_only_the_canary_gets_the_version_until_it_passes(fleet):
    devices, version = fleet
    rollout = create_rollout(version=version, target=RolloutTarget.ALL, soak_s=600)
    (canary,) = members(rollout, 0)

    beat(secret_of(fleet, canary), "1.1.0")
    evaluate(rollout.pk)

    told = {d.name: releases(d)["hello"][0] for d, _ in devices}
    assert told[canary.device.name] == "1.1.0"
    assert sorted(told.values()).count("1.0.0") == 9
    canary.refresh_from_db()
    assert canary.state == MemberState.INSTALLED  # soaking: not healthy yet


def test_a_canary_that_traps_halts_the_rollout_and_it_rolls_back_under_a_new_serial(fleet):
    devices, version = fleet
    old_serial = releases(devices[0][0])["hello"][1]
    rollout = create_rollout(version=version, target=RolloutTarget.ALL, soak_s=600)
    (canary,) = members(rollout, 0)
    trapping = PluginHealth(
        "hello", "1.1.0", requests=12, errors=3, traps={"crash": 3}, fallbacks=3
    )
    reverted = EventReport(
        datetime.now(UTC), "hello", "1.1.0", "reverted", "1.1.0 kept trapping in probation"
    )

    beat(secret_of(fleet, canary), "1.0.0", health=trapping, events=(reverted,))
    rollout.refresh_from_db()

    assert rollout.status == RolloutStatus.ROLLED_BACK
    assert "canary halted: 1 of 1 devices failed" in rollout.halt_reason
    assert f"{canary.device.name}: reverted: 1.1.0 kept trapping" in rollout.halt_reason
    version_back, serial_back = releases(canary.device)["hello"]
    assert version_back == "1.0.0" and serial_back > old_serial
    others = [d for d, _ in devices if d.pk != canary.device_id]
    assert {releases(d)["hello"] for d in others} == {("1.0.0", old_serial)}
    rolled = Decision.objects.get(rollout=rollout, kind="rolled-back")
    assert "1 devices back on 1.0.0 as serial" in rolled.detail


def test_traps_over_the_threshold_fail_a_device_without_any_revert(fleet):
    _, version = fleet
    rollout = create_rollout(
        version=version, target=RolloutTarget.ALL, soak_s=600, auto_rollback=False
    )
    (canary,) = members(rollout, 0)

    beat(
        secret_of(fleet, canary),
        "1.1.0",
        health=PluginHealth("hello", "1.1.0", requests=9, traps={"timeout": 3}, deadline_hits=3),
    )
    rollout.refresh_from_db()

    assert rollout.status == RolloutStatus.HALTED
    assert "3 traps (max 2): 3 deadline hits" in rollout.halt_reason


def test_a_silent_device_is_skipped_after_the_wave_timeout(fleet):
    _, version = fleet
    rollout = create_rollout(version=version, target=RolloutTarget.ALL, soak_s=0, wave_timeout_s=60)
    (canary,) = members(rollout, 0)
    rollout.wave_set.filter(index=0).update(started_at=timezone.now() - timedelta(seconds=61))

    evaluate(rollout.pk)

    canary.refresh_from_db()
    assert canary.state == MemberState.SKIPPED
    assert "no report within 60 s" in canary.reason
    assert rollout.wave_set.get(index=1).status == "running"


def test_pause_resume_abort_and_roll_back_are_recorded(fleet, admin_user):
    _, version = fleet
    rollout = create_rollout(version=version, target=RolloutTarget.ALL, soak_s=0)
    (canary,) = members(rollout, 0)

    pause_rollout(rollout=rollout, by=admin_user)
    beat(secret_of(fleet, canary), "1.1.0")
    assert Rollout.objects.get(pk=rollout.pk).wave_set.get(index=1).status == "pending"
    resume_rollout(rollout=rollout, by=admin_user)
    evaluate(rollout.pk)
    assert rollout.wave_set.get(index=1).status == "running"
    abort_rollout(rollout=rollout, by=admin_user)
    assert rollout.wave_set.get(index=2).status == "cancelled"
    reached = [m.device for m in rollout.members.filter(wave__in=[0, 1])]
    roll_back_rollout(rollout=rollout, by=admin_user)

    assert {releases(d)["hello"][0] for d in reached} == {"1.0.0"}
    kinds = list(Rollout.objects.get(pk=rollout.pk).decisions.values_list("kind", flat=True))
    assert [k for k in kinds if k not in ("progress", "delivered")][-5:] == [
        "resumed",
        "wave-passed",
        "wave-started",
        "aborted",
        "rolled-back",
    ][-5:]
    assert "paused" in kinds
    with pytest.raises(ValidationError, match="cannot pause"):
        pause_rollout(rollout=rollout)


def test_one_active_rollout_per_plugin_and_target(fleet):
    _, version = fleet
    first = create_rollout(version=version, target=RolloutTarget.ALL, soak_s=600)

    with pytest.raises(ValidationError) as refused:
        create_rollout(version=version, target=RolloutTarget.ALL)

    assert refused.value.messages == [
        f"rollout #{first.pk} of hello 1.1.0 to all devices is running; finish, abort or roll "
        "it back first (one active rollout per plugin and target)"
    ]


def test_a_bad_wave_plan_is_refused_with_the_rule(fleet):
    _, version = fleet
    with pytest.raises(ValidationError) as refused:
        create_rollout(version=version, target=RolloutTarget.ALL, waves=[50, 10])

    assert "rising cumulative percentages" in refused.value.message_dict["waves"][0]
    assert not PluginVersion.objects.get(pk=version.pk).rollouts.exists()


def test_a_version_shipped_again_after_a_rollback_gets_a_serial_above_it(fleet):
    devices, version = fleet
    first = assign_now(version=version, target=RolloutTarget.ALL)
    roll_back_rollout(rollout=first)
    back = releases(devices[0][0])["hello"]

    assign_now(version=version, target=RolloutTarget.ALL)

    again = releases(devices[0][0])["hello"]
    assert back[0] == "1.0.0" and again[0] == "1.1.0" and again[1] > back[1]


def test_a_revert_is_what_a_device_that_quarantined_and_reverted_reports():
    from control_plane.rollouts.engine import Observation, Thresholds, classify

    limits = Thresholds(300, 1800, "skip", 90, 5, 10, 2, 5, 20)
    now = timezone.now()
    seen = Observation(
        state=MemberState.INSTALLED,
        installed_at=now,
        last_seen=now,
        running_version="1.0.0",
        running_state="running",
        failures=(("quarantined", "stopped (crash)"), ("reverted", "back on 1.0.0")),
    )

    verdict = classify(seen, "1.1.0", now, now, limits)

    assert (verdict.state, verdict.reason) == (MemberState.REVERTED, "reverted: back on 1.0.0")
