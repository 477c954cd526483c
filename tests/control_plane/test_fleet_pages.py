"""The fleet pages: signed-in only; every device with online/offline, plugins, readings."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from control_plane.devices.models import Device, Tag
from control_plane.devices.services import update_device

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(client, enroll):
    """pi-online heartbeated just now (tagged canary); pi-offline a minute ago."""
    online, token = enroll("pi-online", agent_url="http://pi-online.local:3000")
    offline, _ = enroll("pi-offline")
    update_device(
        device=online,
        name=online.name,
        agent_url=online.agent_url,
        tags=[Tag.objects.create(name="canary")],
    )
    now = time.time()
    report = {
        "host_version": "0.3.0",
        "plugins": [{"name": "hello", "version": "1.0.0", "state": "running"}],
        "readings": [
            {"source": "dht22:4", "temperature_c": 20 + i / 10, "humidity_pct": 45, "taken_at": t}
            for i, t in enumerate(range(int(now) - 60, int(now), 2))
        ],
        "events": [
            {
                "at": now,
                "plugin": "hello",
                "version": "1.0.0",
                "kind": "trapped",
                "detail": "timeout after 250 ms",
            }
        ],
    }
    client.post(
        "/api/v1/heartbeat",
        json.dumps(report),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    Device.objects.filter(pk=offline.pk).update(last_seen=timezone.now() - timedelta(minutes=1))
    return online, offline


def test_the_fleet_page_requires_login(client):
    answer = client.get("/fleet/")

    assert answer.status_code == 302
    assert answer["Location"] == "/accounts/login/?next=/fleet/"


def test_the_fleet_json_requires_login(client):
    assert client.get("/fleet/devices.json").status_code == 302


def test_the_fleet_page_shows_each_device_online_or_offline(admin_client, fleet):
    page = admin_client.get("/fleet/").content.decode()

    assert "pi-online" in page and "pi-offline" in page
    assert '<span class="badge online">online</span>' in page
    assert '<span class="badge offline">offline</span>' in page
    assert "hello 1.0.0" in page and "22.9 °C" in page and "0.3.0" in page


def test_the_fleet_can_be_filtered_by_state_and_tag(admin_client, fleet):
    offline = admin_client.get("/fleet/?state=offline").content.decode()
    canary = admin_client.get("/fleet/?tag=canary").content.decode()

    assert "pi-offline" in offline and "pi-online" not in offline
    assert "pi-online" in canary and "pi-offline" not in canary


def test_the_fleet_json_feeds_the_refresh_script(admin_client, fleet):
    devices = admin_client.get("/fleet/devices.json?state=online").json()["devices"]

    assert [(d["name"], d["connectivity"]) for d in devices] == [("pi-online", "online")]
    assert devices[0]["plugins"] == [{"name": "hello", "version": "1.0.0", "state": "running"}]
    assert devices[0]["last_reading"]["temperature_c"] == pytest.approx(22.9)


def test_a_device_is_offline_after_two_missed_heartbeats_and_grace(settings, enroll):
    device, _ = enroll()
    settings.HEARTBEAT_INTERVAL_S = 10
    now = timezone.now()

    device.last_seen = now - timedelta(seconds=24)
    assert device.connectivity(now) == "online"
    device.last_seen = now - timedelta(seconds=26)
    assert device.connectivity(now) == "offline"


def test_the_device_page_has_charts_plugins_events_and_its_dashboard_link(admin_client, fleet):
    online, _ = fleet

    page = admin_client.get(f"/fleet/devices/{online.pk}/").content.decode()

    assert page.count("<polyline") == 2
    assert "Temperature (°C)" in page and "Humidity (%)" in page
    assert "timeout after 250 ms" in page and 'class="badge trapped"' in page
    assert 'href="http://pi-online.local:3000"' in page
    assert "local (not assigned)" in page


def test_a_device_without_readings_says_so(admin_client, fleet):
    _, offline = fleet

    page = admin_client.get(f"/fleet/devices/{offline.pk}/").content.decode()

    assert "no readings yet" in page and "<polyline" not in page


def test_an_unknown_device_page_is_404(admin_client):
    assert (
        admin_client.get("/fleet/devices/00000000-0000-0000-0000-000000000000/").status_code == 404
    )


def test_a_non_staff_user_signs_in_and_sees_the_fleet(client, django_user_model, fleet):
    django_user_model.objects.create_user("operator", password="s3cret-pass")

    answer = client.post(
        "/accounts/login/",
        {"username": "operator", "password": "s3cret-pass", "next": "/fleet/"},
        follow=True,
    )

    assert answer.redirect_chain[-1][0] == "/fleet/"
    assert "pi-online" in answer.content.decode()
    assert "/admin/" not in answer.content.decode()
