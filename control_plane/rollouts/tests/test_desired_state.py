"""Desired states: what each device is told to run, signed; standing assignments for devices
that join; uninstalling only on purpose."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from control_plane.devices.models import Device, Tag
from control_plane.devices.services import update_device
from control_plane.plugins.models import Plugin
from control_plane.rollouts.choices import AssignmentTarget, RolloutStatus, RolloutTarget
from control_plane.rollouts.models import Assignment
from control_plane.rollouts.services import (
    assign_now,
    create_rollout,
    remove_standing_assignment,
    uninstall_plugin,
)
from control_plane.signing import load_signing_key
from fleet_common.wire.statements import DESIRED_STATE_TYPE, Release, key_id, verify

pytestmark = pytest.mark.django_db


def trusted() -> dict[str, object]:
    public_key = load_signing_key().public_key()
    return {key_id(public_key): public_key}


def desired(device: Device) -> dict[str, object]:
    """The device's desired state, verified with the fleet key like a device does."""
    device.refresh_from_db()
    return verify(json.loads(device.desired_envelope), trusted(), DESIRED_STATE_TYPE)


def running(device: Device) -> dict[str, str]:
    """Plugin → version the device is told to run."""
    releases = [Release.from_envelope(e, trusted()) for e in desired(device)["releases"]]
    return {release.plugin: release.version for release in releases}


def tagged(device: Device, *names: str) -> Device:
    tags = [Tag.objects.get_or_create(name=name)[0] for name in names]
    return update_device(device=device, name=device.name, tags=tags)


def test_a_new_device_gets_a_signed_empty_desired_state(enroll):
    device, _ = enroll("pi-1")

    statement = desired(device)

    assert statement["device_id"] == str(device.pk)
    assert (statement["sequence"], statement["releases"]) == (1, [])


def test_assigning_now_ships_to_every_device_and_leaves_a_standing_assignment(enroll, approved):
    devices = [enroll(name)[0] for name in ("pi-1", "pi-2")]

    rollout = assign_now(version=approved(), target=RolloutTarget.ALL)

    assert rollout.status == RolloutStatus.COMPLETED
    assert [running(d) for d in devices] == [{"hello": "1.0.0"}] * 2
    assert [str(rule) for rule in Assignment.objects.all()] == ["hello 1.0.0 → all devices"]


def test_a_joining_device_gets_the_most_specific_standing_assignment(enroll, approved):
    v1, v2, v3 = approved("1.0.0"), approved("1.1.0"), approved("1.2.0")
    canary = Tag.objects.create(name="canary")
    Assignment.objects.create(plugin_version=v1, target=AssignmentTarget.ALL)
    Assignment.objects.create(plugin_version=v2, target=AssignmentTarget.TAG, tag=canary)
    pi1, pi2, pi3 = (enroll(name)[0] for name in ("pi-1", "pi-2", "pi-3"))
    uninstall_plugin(plugin=Plugin.objects.get(), devices=[pi1, pi2])
    Assignment.objects.create(plugin_version=v3, target=AssignmentTarget.DEVICE, device=pi1)

    for device in (pi1, pi2):
        tagged(device, "canary")

    assert [running(d) for d in (pi1, pi2, pi3)] == [
        {"hello": "1.2.0"},
        {"hello": "1.1.0"},
        {"hello": "1.0.0"},
    ]


def test_a_standing_assignment_never_moves_a_release_a_device_has(enroll, approved):
    device, _ = enroll()
    assign_now(version=approved("1.0.0"), target=RolloutTarget.ALL)
    canary = Tag.objects.create(name="canary")
    Assignment.objects.create(plugin_version=approved("1.1.0"), target="tag", tag=canary)

    tagged(device, "canary")

    assert running(device) == {"hello": "1.0.0"}


def test_each_plugin_is_shipped_separately(enroll, approved):
    device, _ = enroll()

    assign_now(version=approved("1.0.0"), target=RolloutTarget.ALL)
    assign_now(
        version=approved("2.0.0", name="clock"), target=RolloutTarget.DEVICES, devices=[device]
    )

    assert running(device) == {"clock": "2.0.0", "hello": "1.0.0"}


def test_the_sequence_grows_only_when_the_releases_change(enroll, approved):
    device, _ = enroll()
    version = approved()

    assign_now(version=version, target=RolloutTarget.ALL)
    assert desired(device)["sequence"] == 2
    assign_now(version=version, target=RolloutTarget.DEVICES, devices=[device])
    assert desired(device)["sequence"] == 2


def test_removing_a_standing_assignment_uninstalls_nothing(enroll, approved):
    device, _ = enroll()
    assign_now(version=approved(), target=RolloutTarget.ALL)

    remove_standing_assignment(assignment=Assignment.objects.get())

    assert running(device) == {"hello": "1.0.0"}
    assert running(enroll("late")[0]) == {}


def test_uninstalling_is_its_own_explicit_action(enroll, approved):
    kept, removed = enroll("kept")[0], enroll("removed")[0]
    assign_now(version=approved(), target=RolloutTarget.ALL)

    count = uninstall_plugin(plugin=Plugin.objects.get(), devices=[removed])

    assert count == 1
    assert (running(kept), running(removed)) == ({"hello": "1.0.0"}, {})


def test_uninstalling_is_refused_while_a_rollout_of_the_plugin_is_active(enroll, approved):
    device, _ = enroll()
    create_rollout(version=approved(), target=RolloutTarget.ALL, soak_s=60)

    with pytest.raises(ValidationError) as refused:
        uninstall_plugin(plugin=Plugin.objects.get(), devices=[device])

    assert "is running; abort it first" in refused.value.messages[0]


def test_tagging_a_device_gives_it_the_tags_standing_assignment(enroll, approved):
    device, _ = enroll()
    canary = Tag.objects.create(name="canary")
    assign_now(version=approved(), target=RolloutTarget.TAG, tag=canary)
    assert running(device) == {}

    tagged(device, "canary")

    assert running(device) == {"hello": "1.0.0"}


def test_an_enrolling_device_gets_what_was_shipped_to_all(enroll, approved):
    assign_now(version=approved(), target=RolloutTarget.ALL)

    device, _ = enroll("late")

    assert running(device) == {"hello": "1.0.0"}


def test_only_approved_versions_can_be_rolled_out(upload):
    with pytest.raises(ValidationError) as refused:
        assign_now(version=upload(), target=RolloutTarget.ALL)

    assert refused.value.message_dict == {
        "version": ["hello 1.0.0 is not approved; only signed versions ship"]
    }


def test_a_tag_rollout_needs_a_tag(approved):
    with pytest.raises(ValidationError) as refused:
        assign_now(version=approved(), target=RolloutTarget.TAG)

    assert refused.value.message_dict["tag"] == ["choose the tag whose devices get this version"]


def test_the_assign_command_targets_a_device_by_name(enroll, approved, capsys):
    from django.core.management import call_command

    device, _ = enroll("pi-kitchen")
    approved("1.0.0")

    call_command("assign_release", "hello", "1.0.0", "device:pi-kitchen")

    assert running(device) == {"hello": "1.0.0"}
    assert "of hello 1.0.0 to listed devices is completed" in capsys.readouterr().out


def test_the_assign_command_names_a_bad_target(approved):
    from django.core.management import CommandError, call_command

    approved("1.0.0")

    with pytest.raises(CommandError, match="name a target as all, tag:<tag> or device:<name"):
        call_command("assign_release", "hello", "1.0.0", "everyone")
