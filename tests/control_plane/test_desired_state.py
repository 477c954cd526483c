"""Desired state: device beats tag beats all, newest among equals; signed; pushed on change."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.exceptions import ValidationError

from control_plane.devices.models import Device, Tag
from control_plane.devices.services import update_device
from control_plane.plugins.signing import load_signing_key
from control_plane.rollouts.choices import AssignmentTarget
from control_plane.rollouts.services import create_assignment, delete_assignment
from fleet_common.wire.statements import DESIRED_STATE_TYPE, Release, key_id, verify
from tests.support import wait_until

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
    return update_device(device=device, name=device.name, agent_url=device.agent_url, tags=tags)


def test_a_new_device_gets_a_signed_empty_desired_state(enroll):
    device, _ = enroll("pi-1")

    statement = desired(device)

    assert statement["device_id"] == str(device.pk)
    assert (statement["sequence"], statement["releases"]) == (1, [])


def test_a_device_assignment_beats_a_tag_which_beats_all(enroll, approved):
    v1, v2, v3 = approved("1.0.0"), approved("1.1.0"), approved("1.2.0")
    pi1, pi2, pi3 = (enroll(name)[0] for name in ("pi-1", "pi-2", "pi-3"))
    tagged(pi1, "canary")
    tagged(pi2, "canary")

    create_assignment(plugin_version=v3, target=AssignmentTarget.DEVICE, device=pi1)
    create_assignment(plugin_version=v2, target=AssignmentTarget.TAG, tag=Tag.objects.get())
    create_assignment(plugin_version=v1, target=AssignmentTarget.ALL)

    assert [running(d) for d in (pi1, pi2, pi3)] == [
        {"hello": "1.2.0"},
        {"hello": "1.1.0"},
        {"hello": "1.0.0"},
    ]


def test_the_newest_assignment_wins_among_equally_specific_ones(enroll, approved):
    device, _ = enroll()
    old, new = approved("1.0.0"), approved("1.1.0")

    create_assignment(plugin_version=new, target=AssignmentTarget.ALL)
    create_assignment(plugin_version=old, target=AssignmentTarget.ALL)

    assert running(device) == {"hello": "1.0.0"}


def test_each_plugin_is_chosen_separately(enroll, approved):
    device, _ = enroll()
    hello, clock = approved("1.0.0"), approved("2.0.0", name="clock")

    create_assignment(plugin_version=hello, target=AssignmentTarget.ALL)
    create_assignment(plugin_version=clock, target=AssignmentTarget.DEVICE, device=device)

    assert running(device) == {"clock": "2.0.0", "hello": "1.0.0"}


def test_the_sequence_grows_only_when_the_releases_change(enroll, approved):
    device, _ = enroll()
    version = approved()

    create_assignment(plugin_version=version, target=AssignmentTarget.ALL)
    assert desired(device)["sequence"] == 2
    create_assignment(plugin_version=version, target=AssignmentTarget.DEVICE, device=device)
    assert desired(device)["sequence"] == 2


def test_deleting_an_assignment_falls_back_to_the_next_one(enroll, approved):
    device, _ = enroll()
    create_assignment(plugin_version=approved("1.0.0"), target=AssignmentTarget.ALL)
    pinned = create_assignment(
        plugin_version=approved("1.1.0"), target=AssignmentTarget.DEVICE, device=device
    )

    delete_assignment(assignment=pinned)

    assert running(device) == {"hello": "1.0.0"}
    assert desired(device)["sequence"] == 4


def test_tagging_a_device_changes_its_desired_state(enroll, approved):
    device, _ = enroll()
    canary = Tag.objects.create(name="canary")
    create_assignment(plugin_version=approved(), target=AssignmentTarget.TAG, tag=canary)
    assert running(device) == {}

    tagged(device, "canary")

    assert running(device) == {"hello": "1.0.0"}


def test_an_enrolling_device_gets_what_is_assigned_to_all(enroll, approved):
    create_assignment(plugin_version=approved(), target=AssignmentTarget.ALL)

    device, _ = enroll("late")

    assert running(device) == {"hello": "1.0.0"}


def test_only_approved_versions_can_be_assigned(upload):
    with pytest.raises(ValidationError) as refused:
        create_assignment(plugin_version=upload(), target=AssignmentTarget.ALL)

    assert refused.value.message_dict == {
        "plugin_version": ["hello 1.0.0 is not approved; only signed versions ship"]
    }


def test_a_tag_assignment_needs_a_tag(approved):
    with pytest.raises(ValidationError) as refused:
        create_assignment(plugin_version=approved(), target=AssignmentTarget.TAG)

    assert refused.value.message_dict["tag"] == ["choose the tag whose devices get this version"]


class Agent(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, object]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Agent.received.append((self.path, json.loads(body)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def agent_server():
    Agent.received = []
    server = HTTPServer(("127.0.0.1", 0), Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_changed_desired_state_is_pushed_to_the_agent_after_commit(
    enroll, approved, agent_server, django_capture_on_commit_callbacks
):
    enroll("pi-1", agent_url=agent_server)
    version = approved()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create_assignment(plugin_version=version, target=AssignmentTarget.ALL)
    assert Agent.received == []
    for callback in callbacks:
        callback()

    wait_until(lambda: Agent.received, timeout=10, what="a push")
    path, envelope = Agent.received[0]
    assert path == "/agent/v1/desired-state"
    assert verify(envelope, trusted(), DESIRED_STATE_TYPE)["sequence"] == 2


def test_an_unreachable_agent_does_not_fail_the_change(
    enroll, approved, django_capture_on_commit_callbacks, caplog
):
    enroll("gone", agent_url="http://127.0.0.1:9")
    version = approved()

    with django_capture_on_commit_callbacks(execute=True):
        create_assignment(plugin_version=version, target=AssignmentTarget.ALL)

    wait_until(lambda: "cannot push to device gone" in caplog.text, timeout=10, what="a log")


def test_the_assign_command_targets_a_device_by_name(enroll, approved, capsys):
    from django.core.management import call_command

    device, _ = enroll("pi-kitchen")
    approved("1.0.0")

    call_command("assign_release", "hello", "1.0.0", "device:pi-kitchen")

    assert running(device) == {"hello": "1.0.0"}
    assert "assigned hello 1.0.0 → device pi-kitchen" in capsys.readouterr().out


def test_the_assign_command_names_a_bad_target(approved):
    from django.core.management import CommandError, call_command

    approved("1.0.0")

    with pytest.raises(CommandError, match="name a target as all, tag:<tag> or device:<name"):
        call_command("assign_release", "hello", "1.0.0", "everyone")
