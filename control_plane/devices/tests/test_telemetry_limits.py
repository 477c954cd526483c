"""Bounded telemetry: each limit refuses before the work it guards, with a Retry-After."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from control_plane.devices.api.views import heartbeat
from control_plane.devices.exceptions import TelemetryRefused
from control_plane.devices.models import Device, Reading
from control_plane.devices.services import admit_heartbeat, record_heartbeat
from device_host.agent.agent import MAX_READINGS_PER_HEARTBEAT
from fleet_common.wire.heartbeat import Heartbeat, ReadingReport

pytestmark = pytest.mark.django_db

HEARTBEAT = "/api/v1/heartbeat"


def readings(count: int, *, start: float | None = None) -> list[dict[str, object]]:
    """``count`` readings a second apart (distinct, so every one would be stored)."""
    first = time.time() - 3600 if start is None else start
    return [
        {"source": "dht22:4", "temperature_c": 21.5, "humidity_pct": 40.0, "taken_at": first + i}
        for i in range(count)
    ]


def beat(client, token: str, body: object):
    return client.post(
        HEARTBEAT, json.dumps(body), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip


class Unreadable:
    """A request body that fails the test if anything reads it."""

    def read(self, *args: object) -> bytes:
        raise AssertionError("the body was read")

    readline = read


def unread_heartbeat(token: str, size: int):
    request = RequestFactory().post(
        HEARTBEAT, b"{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    request.META["CONTENT_LENGTH"] = str(size)
    request._stream = Unreadable()  # type: ignore[attr-defined]
    return heartbeat(request)


def test_the_default_limit_leaves_room_for_what_the_agent_sends(client, enroll, settings):
    _, token = enroll()
    assert settings.READINGS_PER_HEARTBEAT_MAX >= MAX_READINGS_PER_HEARTBEAT

    answer = beat(client, token, {"readings": readings(MAX_READINGS_PER_HEARTBEAT)})

    assert answer.status_code == 200
    assert Reading.objects.count() == MAX_READINGS_PER_HEARTBEAT


def test_too_many_readings_are_a_429_naming_the_count_and_the_limit(client, enroll, settings):
    device, token = enroll()
    limit = settings.READINGS_PER_HEARTBEAT_MAX

    answer = beat(client, token, {"readings": readings(limit + 1)})

    assert answer.status_code == 429
    assert answer["Retry-After"] == "10"  # the heartbeat interval
    error = answer.json()["error"]
    assert f"carries {limit + 1} readings" in error and f"at most {limit}" in error
    assert not Reading.objects.exists()
    device.refresh_from_db()
    assert device.last_seen is None and device.telemetry_bytes == 0


def test_readings_are_counted_before_any_is_parsed(client, enroll, settings):
    """A list of junk longer than the limit is refused for its length, not parsed item by item."""
    _, token = enroll()

    answer = beat(client, token, {"readings": ["junk"] * (settings.READINGS_PER_HEARTBEAT_MAX + 1)})

    assert answer.status_code == 429


def test_the_hourly_byte_budget_is_a_429_until_the_window_frees(client, enroll, settings):
    device, token = enroll()
    settings.TELEMETRY_BYTES_PER_HOUR = 10_000
    started = timezone.now() - timedelta(minutes=20)
    Device.objects.filter(pk=device.pk).update(
        telemetry_window_start=started, telemetry_bytes=9_990
    )

    answer = beat(client, token, {"readings": readings(1)})

    assert answer.status_code == 429
    assert 2390 <= int(answer["Retry-After"]) <= 2400  # 40 minutes left of the hour
    error = answer.json()["error"]
    assert "has sent 9990 heartbeat bytes this hour" in error and "limit is 10000" in error
    assert not Reading.objects.exists()


def test_heartbeats_charge_their_bytes_and_a_new_hour_starts_afresh(client, enroll, settings):
    device, token = enroll()
    settings.TELEMETRY_BYTES_PER_HOUR = 10_000
    body = {"readings": readings(1)}
    size = len(json.dumps(body))

    assert beat(client, token, body).status_code == 200
    device.refresh_from_db()
    assert device.telemetry_bytes == size and device.telemetry_window_start is not None
    Device.objects.filter(pk=device.pk).update(
        telemetry_window_start=timezone.now() - timedelta(minutes=61), telemetry_bytes=10_000
    )

    assert beat(client, token, body).status_code == 200
    device.refresh_from_db()
    assert device.telemetry_bytes == size  # the window restarted with this heartbeat


def test_the_byte_budget_refuses_before_the_body_is_read(enroll, settings):
    device, token = enroll()
    settings.TELEMETRY_BYTES_PER_HOUR = 10_000
    Device.objects.filter(pk=device.pk).update(
        telemetry_window_start=timezone.now(), telemetry_bytes=9_000
    )

    answer = unread_heartbeat(token, 2_000)

    assert answer.status_code == 429
    assert 3590 <= int(answer["Retry-After"]) <= 3600


def test_a_body_over_the_cap_is_refused_unread(enroll, settings):
    _, token = enroll()

    answer = unread_heartbeat(token, settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    assert answer.status_code == 413
    assert "the limit is" in json.loads(answer.content)["error"]


def test_heartbeats_racing_for_the_last_bytes_cannot_overdraw_the_budget(enroll, settings):
    """The UPDATE that stores a heartbeat charges it only if it still fits: a heartbeat
    admitted on a stale view of the budget stores nothing."""
    device, token = enroll()
    settings.TELEMETRY_BYTES_PER_HOUR = 10_000
    admitted = admit_heartbeat(device_token=token, body_bytes=500)
    Device.objects.filter(pk=device.pk).update(
        telemetry_window_start=timezone.now(), telemetry_bytes=9_800
    )
    reading = ReadingReport("dht22:4", 20.0, 50.0, timezone.now())

    with pytest.raises(TelemetryRefused) as refused:
        record_heartbeat(
            device_token=token,
            heartbeat=Heartbeat("0.1.0", None, readings=(reading,)),
            body_bytes=500,
            device=admitted,
        )

    assert refused.value.retry_after_s >= 3590
    assert not Reading.objects.exists()
    device.refresh_from_db()
    assert (device.telemetry_bytes, device.last_seen) == (9_800, None)


def test_a_flood_from_one_token_is_refused_before_storage(client, enroll, settings):
    """The issue's attack: one token sending as fast as it can (326,900 readings in 10 s).
    Storage stops at the hourly byte budget; nothing past it is written."""
    device, token = enroll()
    settings.TELEMETRY_BYTES_PER_HOUR = 100_000
    start = time.time() - 3600
    statuses = []
    for n in range(20):
        body = {"readings": readings(200, start=start + n * 200)}
        statuses.append(beat(client, token, body).status_code)

    accepted = statuses.count(200)
    assert statuses == [200] * accepted + [429] * (20 - accepted)
    assert 1 <= accepted <= 100_000 // 15_000  # a heartbeat of 200 readings is ~16 kB
    assert Reading.objects.count() == accepted * 200
    device.refresh_from_db()
    assert device.telemetry_bytes <= settings.TELEMETRY_BYTES_PER_HOUR


def test_readings_dated_in_the_future_are_not_stored_and_the_answer_says_so(client, enroll):
    device, token = enroll()
    now = time.time()
    sent = readings(1, start=now - 5) + readings(1, start=now + 200)  # within the tolerance
    sent += readings(2, start=4102444800)  # 2100-01-01

    answer = beat(client, token, {"host_version": "0.2.0", "readings": sent})

    assert answer.status_code == 200
    rejected = answer.json()["rejected_readings"]
    assert rejected["count"] == 2
    assert rejected["problem"].startswith("readings[2].taken_at 2100-01-01T00:00:00+00:00 is ")
    assert "tolerance 300 s" in rejected["problem"]
    assert Reading.objects.count() == 2
    device.refresh_from_db()
    assert device.host_version == "0.2.0"  # the rest of the heartbeat is stored
    assert device.last_reading["taken_at"] < "2100"
