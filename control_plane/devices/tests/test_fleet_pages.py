"""The fleet pages: signed-in only; counts, one page of devices with the truth about each
(drift, last-known plugins, errors against their version), the inverse view, one device."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from control_plane.devices.models import Device, DeviceEvent, LogLine, PluginHealth, Tag
from control_plane.devices.selectors import PAGE_SIZE
from control_plane.devices.services import update_device
from control_plane.devices.tokens import hash_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(client, enroll):
    """pi-online heartbeated just now (tagged canary); pi-offline a minute ago."""
    online, token = enroll("pi-online")
    offline, _ = enroll("pi-offline")
    update_device(device=online, name=online.name, tags=[Tag.objects.create(name="canary")])
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
    assert "hello 1.0.0</a>" in page and "22.9 °C" in page and "0.3.0" in page
    assert '<b id="count-online">1</b> online' in page
    assert '<b id="count-offline">1</b> offline' in page


def test_the_fleet_can_be_filtered_by_state_and_tag(admin_client, fleet):
    offline = admin_client.get("/fleet/?state=offline").content.decode()
    canary = admin_client.get("/fleet/?tag=canary").content.decode()

    assert "pi-offline" in offline and "pi-online" not in offline
    assert "pi-online" in canary and "pi-offline" not in canary


def test_the_fleet_json_feeds_the_refresh_script(admin_client, fleet):
    answer = admin_client.get("/fleet/devices.json?state=online").json()
    devices = answer["devices"]

    assert [(d["name"], d["connectivity"]) for d in devices] == [("pi-online", "online")]
    (plugin,) = devices[0]["plugins"]
    assert (plugin["name"], plugin["running"], plugin["state"]) == ("hello", "1.0.0", "running")
    assert devices[0]["last_reading"]["temperature_c"] == pytest.approx(22.9)
    assert devices[0]["html"].startswith(f'<tr data-device="{devices[0]["id"]}"')
    assert answer["counts"]["online"] == 1 and answer["counts"]["offline"] == 1


def test_a_device_is_offline_after_two_missed_heartbeats_and_grace(settings, enroll):
    device, _ = enroll()
    settings.HEARTBEAT_INTERVAL_S = 10
    now = timezone.now()

    device.last_seen = now - timedelta(seconds=24)
    assert device.connectivity(now) == "online"
    device.last_seen = now - timedelta(seconds=26)
    assert device.connectivity(now) == "offline"


def test_the_device_page_has_charts_plugins_and_events(admin_client, fleet):
    online, _ = fleet

    page = admin_client.get(f"/fleet/devices/{online.pk}/").content.decode()

    assert page.count("<polyline") == 2  # one sensor: one line per chart
    assert "Temperature (°C)" in page and "Humidity (%)" in page
    assert "timeout after 250 ms" in page and 'class="badge trapped"' in page
    assert ":3000" not in page  # the control plane no longer knows any device address
    assert "local (not assigned)" in page
    assert "In no rollout." in page and "No log lines reported." in page


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


def device(name: str, **fields: object) -> Device:
    """A device row made directly, as a heartbeat would have left it."""
    fields.setdefault("last_seen", timezone.now())
    return Device.objects.create(name=name, token_hash=hash_token(f"token-{name}"), **fields)


def hello(version: str, state: str = "running", **more: object) -> dict[str, object]:
    return {"name": "hello", "version": version, "state": state, **more}


def test_a_device_that_does_not_run_what_it_should_says_both(admin_client):
    device(
        "pi-drift",
        desired_versions={"hello": "1.1.0"},
        reported_plugins=[hello("1.0.0")],
        drifting=True,
    )

    page = admin_client.get("/fleet/").content.decode()

    assert "should run" in page and ">1.1.0</a>, runs 1.0.0" in page
    assert '<span class="badge converging">drifting</span>' in page
    assert '<b id="count-drifting">1</b> drifting' in page


def test_a_device_that_should_run_a_plugin_it_lacks_runs_nothing(admin_client):
    device("pi-new", desired_versions={"hello": "1.1.0"}, drifting=True)

    page = admin_client.get("/fleet/?state=drifting").content.decode()

    assert ">1.1.0</a>, runs nothing" in page


def test_an_offline_devices_plugins_are_last_known_and_never_green(admin_client):
    seen = timezone.now() - timedelta(hours=2)
    device("pi-gone", last_seen=seen, reported_plugins=[hello("1.0.0")])

    page = admin_client.get("/fleet/").content.decode()

    assert '<tr data-device="' in page and 'class="last-known"' in page
    assert f"last known, {seen:%Y-%m-%d %H:%M:%S} UTC" in page
    assert '<span class="badge stale">was running</span>' in page
    assert '<span class="badge running">' not in page


def test_an_error_is_shown_against_the_version_that_produced_it(admin_client):
    now = timezone.now()
    gone = device(
        "pi-reverted",
        desired_versions={"hello": "1.1.0"},
        reported_plugins=[hello("1.0.0", last_error="sensor timeout")],
        drifting=True,
    )
    DeviceEvent.objects.create(
        device=gone,
        at=now,
        plugin="hello",
        version="1.1.0",
        kind="reverted",
        detail="1.1.0 kept trapping in probation",
    )

    page = admin_client.get("/fleet/").content.decode()

    assert "1.0.0: sensor timeout" in page
    assert '<span class="badge reverted" title="' in page and "reverted 1.1.0</span>" in page
    assert "1.1.0 kept trapping in probation" in page


def test_a_quarantined_plugin_is_badged_from_its_reported_state(admin_client):
    device("pi-q", reported_plugins=[hello("1.0.0", state="quarantined")], failing=True)

    page = admin_client.get("/fleet/?state=failing").content.decode()

    assert '<span class="badge quarantined">quarantined</span>' in page and "pi-q" in page


def test_search_finds_devices_by_part_of_their_name(admin_client):
    device("kitchen-pi")
    device("garage-pi")

    page = admin_client.get("/fleet/?q=KITCH").content.decode()

    assert "kitchen-pi" in page and "garage-pi" not in page


def test_the_version_filter_keeps_devices_that_run_it(admin_client):
    device("pi-old", reported_plugins=[hello("1.0.0")])
    device("pi-new", reported_plugins=[hello("1.1.0")])

    page = admin_client.get("/fleet/?plugin=hello&version=1.1.0").content.decode()

    assert "pi-new" in page and "pi-old" not in page


def test_the_overview_pages_by_fifty_and_sorts_by_last_seen(admin_client):
    now = timezone.now()
    for n in range(PAGE_SIZE + 5):
        device(f"pi-{n:03}", last_seen=now - timedelta(seconds=n))

    first = admin_client.get("/fleet/").content.decode()
    second = admin_client.get("/fleet/?page=2").content.decode()
    newest_last = admin_client.get("/fleet/?sort=last_seen").content.decode()

    assert first.count('<tr data-device="') == PAGE_SIZE and "pi-049" in first
    assert second.count('<tr data-device="') == 5 and "pi-050" in second
    assert "page 2 of 2" in second and 'rel="prev"' in second
    assert newest_last.index("pi-054") < newest_last.index("pi-053")


def test_bad_filters_are_refused_with_the_reason(admin_client):
    for query, words in (
        ("state=sleepy", "state must be one of"),
        ("sort=colour", "sort must be one of"),
        ("page=-1", "page must be a whole number"),
        ("since=yesterday", "since must be an ISO 8601 time"),
        ("version=1.0.0", "a version filter needs its plugin"),
    ):
        answer = admin_client.get(f"/fleet/devices.json?{query}")
        assert answer.status_code == 400 and words in answer.content.decode()


def test_since_returns_only_the_page_devices_that_changed(admin_client):
    now = timezone.now()
    device("pi-fresh", last_seen=now)
    device("pi-quiet", last_seen=now - timedelta(seconds=10))
    device("pi-just-offline", last_seen=now - timedelta(seconds=26))
    device("pi-long-gone", last_seen=now - timedelta(hours=1))
    since = (now - timedelta(seconds=3)).isoformat()

    answer = admin_client.get("/fleet/devices.json", {"since": since}).json()

    assert sorted(d["name"] for d in answer["devices"]) == ["pi-fresh", "pi-just-offline"]
    assert len(answer["ids"]) == 4 and answer["counts"]["total"] == 4


def test_a_page_of_ten_thousand_devices_stays_small(admin_client):
    """The page's bytes grow with the page, not the fleet."""
    Device.objects.bulk_create(
        Device(
            name=f"pi-{n:05}",
            token_hash=f"{n:064}",
            reported_plugins=[hello("1.0.0")],
            desired_versions={"hello": "1.0.0"},
            desired_envelope="x" * 4000,
        )
        for n in range(2000)
    )

    page = admin_client.get("/fleet/")
    data = admin_client.get("/fleet/devices.json")

    assert len(page.content) < 200_000 and len(data.content) < 200_000
    assert page.content.decode().count('<tr data-device="') == PAGE_SIZE


def test_the_version_page_lists_who_runs_should_run_and_failed_it(admin_client):
    device("pi-runs", reported_plugins=[hello("1.1.0")], desired_versions={"hello": "1.1.0"})
    device("pi-waits", reported_plugins=[hello("1.0.0")], desired_versions={"hello": "1.1.0"})
    failed = device("pi-failed", reported_plugins=[hello("1.0.0")])
    DeviceEvent.objects.create(
        device=failed,
        at=timezone.now(),
        plugin="hello",
        version="1.1.0",
        kind="refused",
        detail="bad signature",
    )

    page = admin_client.get("/fleet/versions/hello/1.1.0/").content.decode()

    running = page[page.index('id="running"') : page.index('id="desired"')]
    desired = page[page.index('id="desired"') : page.index('id="failed"')]
    refused = page[page.index('id="failed"') :]
    assert "pi-runs" in running and "pi-waits" not in running
    assert "pi-runs" in desired and "pi-waits" in desired and "pi-failed" not in desired
    assert "pi-failed" in refused and "pi-runs" not in refused


def test_the_device_page_shows_vitals_health_log_and_install_history(admin_client):
    now = timezone.now()
    pi = device(
        "pi-full",
        reported_plugins=[hello("1.1.0", last_error="boom")],
        desired_versions={"hello": "1.1.0"},
        vitals={
            "ip": "10.0.0.7",
            "os": "Raspberry Pi OS 12",
            "kernel": "6.6.31",
            "uptime_s": 90061,
            "cpu_temp_c": 51.25,
            "mem_total_bytes": 4 * 2**30,
            "mem_available_bytes": 3 * 2**30,
            "disk_total_bytes": 32 * 2**30,
            "disk_free_bytes": 20 * 2**30,
        },
    )
    PluginHealth.objects.create(
        device=pi,
        plugin="hello",
        version="1.1.0",
        first_at=now,
        updated_at=now,
        requests=120,
        errors=2,
        traps=1,
        trap_timeout=1,
        self_check="passed",
        p50_ms=1.5,
        p99_ms=9.4,
    )
    PluginHealth.objects.create(
        device=pi, plugin="hello", version="1.0.0", first_at=now, updated_at=now, requests=777
    )
    LogLine.objects.create(
        device=pi, at=now, plugin="hello", stream="log", level="warning", text="sensor slow"
    )
    DeviceEvent.objects.create(device=pi, at=now, plugin="hello", version="1.1.0", kind="installed")

    page = admin_client.get(f"/fleet/devices/{pi.pk}/").content.decode()

    assert "10.0.0.7" in page and "6.6.31" in page and "1 d 1 h" in page
    assert "51.2 °C" in page and "3.0\xa0GB free of 4.0\xa0GB" in page
    assert "<td>120</td>" in page
    assert "timeout 1" in page and "1.5 / 9.4 ms" in page
    assert "777" not in page  # the version it no longer runs
    assert "sensor slow" in page and "[warning]" in page
    assert '<span class="badge installed">installed</span>' in page
    assert "1.1.0: boom" in page


def test_an_offline_devices_page_marks_its_plugins_last_known(admin_client):
    seen = timezone.now() - timedelta(hours=1)
    pi = device("pi-away", last_seen=seen, reported_plugins=[hello("1.0.0")])

    page = admin_client.get(f"/fleet/devices/{pi.pk}/").content.decode()

    assert f"last known, {seen:%Y-%m-%d %H:%M:%S} UTC" in page
    assert '<span class="badge stale">last known: running</span>' in page


def test_hostile_names_in_the_version_page_are_just_names(admin_client):
    device("pi-1", desired_versions={"hello": "1.0.0"}, reported_plugins=[hello("1.0.0")])

    for url in (
        "/fleet/versions/contains/1.0.0/",
        "/fleet/versions/hello__version/1.0.0/",
        "/fleet/versions/he'llo/1.0%220/",
        "/fleet/versions/hello/1.0.0/?page=²",
    ):
        answer = admin_client.get(url)
        assert answer.status_code == 200, url
    assert "pi-1" not in admin_client.get("/fleet/versions/contains/1.0.0/").content.decode()
    assert admin_client.get("/fleet/?page=²").status_code == 400


def test_every_sort_has_a_label_in_the_form(admin_client):
    from control_plane.devices.selectors import SORTS
    from control_plane.devices.views import SORT_LABELS

    page = admin_client.get("/fleet/?sort=-last_seen").content.decode()

    assert set(SORT_LABELS) == set(SORTS)
    assert '<option value="-last_seen" selected>last seen, newest first</option>' in page
