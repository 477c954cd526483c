"""Heartbeats: authenticated by the device token; store status, readings and events once."""

from __future__ import annotations

import json
import time

import pytest

from control_plane.builds.models import CompiledArtifact
from control_plane.devices.models import Device, DeviceEvent, Reading
from control_plane.rollouts.choices import RolloutTarget
from control_plane.rollouts.services import assign_now
from fleet_common.compiler.settings import native_target

pytestmark = pytest.mark.django_db

HEARTBEAT = "/api/v1/heartbeat"
NOW = time.time()


def report(**changes: object) -> dict[str, object]:
    """A heartbeat shaped like the device agent's."""
    body: dict[str, object] = {
        "host_version": "0.2.0",
        "plugins": [
            {
                "name": "hello",
                "version": "1.0.0",
                "sha256": "ab" * 32,
                "state": "running",
                "trap_count": 0,
                "last_error": None,
            }
        ],
        "readings": [
            {"source": "dht22:4", "temperature_c": 21.5, "humidity_pct": 40.0, "taken_at": NOW - 4},
            {"source": "dht22:4", "temperature_c": 21.7, "humidity_pct": 41.0, "taken_at": NOW - 2},
        ],
        "events": [
            {
                "at": NOW - 3,
                "plugin": "hello",
                "version": "1.0.0",
                "kind": "installed",
                "detail": "",
            }
        ],
    }
    body.update(changes)
    return body


def beat(client, token: str | None, body: object):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(HEARTBEAT, json.dumps(body), content_type="application/json", **headers)


def test_a_heartbeat_without_a_token_is_401(client):
    answer = beat(client, None, report())

    assert answer.status_code == 401
    assert answer.json() == {"error": "missing Authorization: Bearer <device token>"}
    assert answer["WWW-Authenticate"].startswith("Bearer")


def test_a_heartbeat_with_an_unknown_token_is_401(client, enroll):
    enroll()

    answer = beat(client, "not-a-device-token", report())

    assert answer.status_code == 401
    assert "unknown device token" in answer.json()["error"]
    assert not Reading.objects.exists()


def test_a_heartbeat_stores_status_readings_and_events(client, enroll):
    device, token = enroll()

    answer = beat(client, token, report())

    assert answer.status_code == 200
    device.refresh_from_db()
    assert device.host_version == "0.2.0"
    assert device.last_seen is not None
    assert device.reported_plugins[0]["state"] == "running"
    assert device.last_reading["temperature_c"] == 21.7
    assert list(Reading.objects.values_list("temperature_c", flat=True).order_by("taken_at")) == [
        21.5,
        21.7,
    ]
    event = DeviceEvent.objects.get()
    assert (event.plugin, event.kind, event.device_id) == ("hello", "installed", device.pk)


def test_a_heartbeat_answers_with_the_signed_desired_state(client, enroll, approved):
    device, token = enroll()
    assign_now(version=approved(), target=RolloutTarget.ALL)
    device.refresh_from_db()

    body = beat(client, token, report()).json()

    assert body["heartbeat_interval_s"] == 10
    assert body["desired"] == json.loads(device.desired_envelope)
    assert json.loads(body["desired"]["statement"])["sequence"] == 2


def test_a_device_with_the_current_sequence_gets_the_interval_alone(client, enroll, approved):
    """Nothing changed: the answer is a few dozen bytes, not the signed envelope again."""
    device, token = enroll()
    assign_now(version=approved(), target=RolloutTarget.ALL)
    device.refresh_from_db()

    answer = beat(client, token, report(desired_sequence=device.desired_sequence))

    assert answer.content == b'{"heartbeat_interval_s":10}'
    assert len(answer.content) < 100


@pytest.mark.parametrize("reported", [None, "older"])
def test_a_device_without_the_current_sequence_gets_the_envelope(
    client, enroll, approved, reported
):
    """An older host sends no sequence; a newer one that missed a change sends an older one."""
    device, token = enroll()
    assign_now(version=approved(), target=RolloutTarget.ALL)
    device.refresh_from_db()
    body = report() if reported is None else report(desired_sequence=device.desired_sequence - 1)

    answer = beat(client, token, body).json()

    assert answer["desired"] == json.loads(device.desired_envelope)
    assert len(device.desired_envelope) > 1000  # what every unchanged answer used to carry


def test_a_device_ahead_of_a_restored_database_gets_its_state_signed_above(
    client, enroll, approved
):
    """The database went back to a backup; the device accepted sequence 40 before that.
    Offering it 2 again would be refused forever: the state is signed again as 41."""
    device, token = enroll()
    assign_now(version=approved(), target=RolloutTarget.ALL)
    device.refresh_from_db()
    releases = json.loads(json.loads(device.desired_envelope)["statement"])["releases"]

    answer = beat(client, token, report(desired_sequence=40)).json()

    statement = json.loads(answer["desired"]["statement"])
    assert statement["sequence"] == 41
    assert statement["releases"] == releases
    device.refresh_from_db()
    assert device.desired_sequence == 41
    again = beat(client, token, report(desired_sequence=41))
    assert again.content == b'{"heartbeat_interval_s":10}'


def test_a_device_whose_engine_changes_gets_the_artifacts_for_its_new_key(client, enroll, approved):
    """A host upgrade changes the engine key: the next answer carries the new key's code."""
    device, token = enroll()  # enrolled without an engine: no artifacts
    version = approved()
    assign_now(version=version, target=RolloutTarget.ALL)
    artifact = CompiledArtifact.objects.get(version=version)
    engine = {"key": artifact.engine_key, "target": native_target(), "features": []}

    before = json.loads(beat(client, token, report()).json()["desired"]["statement"])
    current = report(engine=engine, desired_sequence=before["sequence"])
    after = json.loads(beat(client, token, current).json()["desired"]["statement"])

    assert before["compiled"] == []
    assert after["sequence"] == before["sequence"] + 1
    [compiled] = after["compiled"]
    assert compiled == artifact.envelope
    device.refresh_from_db()
    assert (device.engine_key, device.engine_target) == (artifact.engine_key, native_target())


def test_a_retried_heartbeat_stores_nothing_twice(client, enroll):
    _, token = enroll()

    beat(client, token, report())
    beat(client, token, report())

    assert Reading.objects.count() == 2
    assert DeviceEvent.objects.count() == 1


def test_an_empty_heartbeat_only_marks_the_device_seen(client, enroll, django_assert_num_queries):
    device, token = enroll()

    with django_assert_num_queries(2):
        answer = beat(client, token, {"host_version": "0.2.0"})

    assert answer.status_code == 200
    device.refresh_from_db()
    assert device.last_seen is not None and device.reported_plugins == []


def test_an_iso_timestamp_is_accepted(client, enroll):
    _, token = enroll()
    reading = {
        "source": "dht22:4",
        "temperature_c": 20,
        "humidity_pct": 50,
        "taken_at": "2026-11-23T20:00:00Z",
    }

    assert beat(client, token, report(readings=[reading])).status_code == 200
    assert Reading.objects.get().taken_at.isoformat() == "2026-11-23T20:00:00+00:00"


def test_an_unknown_event_kind_is_kept_as_other(client, enroll):
    _, token = enroll()
    event = {"at": NOW, "plugin": "hello", "version": "1", "kind": "teleported", "detail": "x"}

    assert beat(client, token, report(events=[event])).status_code == 200
    assert DeviceEvent.objects.values_list("kind", "detail").get() == ("other", "[teleported] x")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"readings": "many"}, "readings must be a list"),
        (
            {"readings": [{"source": "dht22:4", "temperature_c": "hot", "humidity_pct": 1}]},
            "readings[0].temperature_c must be a number",
        ),
        (
            {"readings": [{"source": "s", "temperature_c": 1, "humidity_pct": 1, "taken_at": 5}]},
            "readings[0].taken_at is before the year 2000",
        ),
        ({"events": [{"at": NOW, "kind": "installed"}]}, "events[0].plugin must be"),
        ({"plugins": [{"version": "1"}]}, "plugins[0].name must be a non-empty string"),
        ({"host_version": 3}, "host_version must be a string"),
    ],
)
def test_a_malformed_heartbeat_is_a_400_naming_the_field(client, enroll, changes, error):
    device, token = enroll()

    answer = beat(client, token, report(**changes))

    assert answer.status_code == 400
    assert answer.json()["error"].startswith(error)
    device.refresh_from_db()
    assert device.last_seen is None


def test_nan_is_not_a_temperature(client, enroll):
    _, token = enroll()
    body = json.dumps(report()).replace("21.5", "NaN")

    answer = client.post(
        HEARTBEAT, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert answer.status_code == 400
    assert "NaN is not a JSON number" in answer.json()["error"]


def test_a_get_is_not_a_heartbeat(client):
    answer = client.get(HEARTBEAT)

    assert (answer.status_code, answer["Allow"]) == (405, "POST")
    assert answer.json() == {"error": "use POST for /api/v1/heartbeat"}


def test_devices_never_see_each_others_state(client, enroll):
    first, first_token = enroll("pi-1")
    second, _ = enroll("pi-2")

    body = beat(client, first_token, report()).json()

    assert json.loads(body["desired"]["statement"])["device_id"] == str(first.pk)
    assert Device.objects.get(pk=second.pk).last_seen is None


def test_health_counters_add_up_per_version_and_kind_in_one_upsert(enroll):
    from control_plane.devices.models import PluginHealth
    from control_plane.devices.services import record_heartbeat
    from fleet_common.wire.health import PluginHealth as Health
    from fleet_common.wire.heartbeat import Heartbeat, PluginReport

    device, secret = enroll()
    first = Health("hello", "1.1.0", requests=10, errors=2, traps={"crash": 2}, p50_ms=1.0)
    second = Health(
        "hello", "1.1.0", requests=5, traps={"timeout": 1, "teleported": 1}, deadline_hits=1
    )

    for entry in (first, second):
        record_heartbeat(
            device_token=secret,
            heartbeat=Heartbeat("0.1.0", None, (PluginReport("hello"),), health=(entry,)),
        )

    row = PluginHealth.objects.get(device=device, plugin="hello", version="1.1.0")
    assert (row.requests, row.errors, row.traps, row.deadline_hits) == (15, 2, 4, 1)
    assert row.traps_by_kind == {"crash": 2, "timeout": 1, "other": 1}
    assert row.p50_ms == 1.0  # the second heartbeat had no calls timed: the last figure stays
