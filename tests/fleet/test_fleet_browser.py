"""The operator's fleet pages in a real browser: the overview's truth and live refresh, the
rollout page and its buttons, against a real control plane (gunicorn on loopback).

The rows are written with the control plane's own models through ``manage.py shell`` (what
heartbeats and the rollout engine would have left), so the pages are shown in every state
an operator meets without waiting for a fleet to get there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import ARTIFACTS, ControlPlaneProcess

SEED = """
from datetime import timedelta
from django.utils import timezone
from control_plane.devices.models import Device, DeviceEvent, Tag
from control_plane.plugins.models import Plugin, PluginVersion, Release
from control_plane.rollouts.models import Decision, Member, Rollout, Wave

now = timezone.now()
def hello(version, state="running", error=None):
    return {"name": "hello", "version": version, "state": state, "trap_count": 0,
            "last_error": error}
kitchen = Tag.objects.create(name="kitchen")
rows = [
    ("pi-canary", now, [hello("1.0.0", error="sensor timeout")], {"hello": "1.0.0"}, False),
    ("pi-drifting", now, [hello("1.0.0")], {"hello": "1.1.0"}, True),
    ("pi-quarantined", now, [hello("1.0.0", "quarantined")], {"hello": "1.0.0"}, False),
    ("pi-offline", now - timedelta(hours=2), [hello("1.0.0")], {"hello": "1.0.0"}, False),
] + [(f"pi-{n:02}", now, [hello("1.0.0")], {"hello": "1.0.0"}, False) for n in range(6)]
devices = {}
for name, seen, plugins, desired, drifting in rows:
    devices[name] = Device.objects.create(
        name=name, token_hash=name.ljust(64, "0"), last_seen=seen, host_version="0.4.0",
        reported_plugins=plugins, desired_versions=desired, drifting=drifting,
        failing=plugins[0]["state"] != "running",
        last_reading={"source": "dht22:4", "temperature_c": 21.5, "humidity_pct": 44.0,
                      "taken_at": seen.isoformat()})
devices["pi-canary"].tags.add(kitchen)
DeviceEvent.objects.create(device=devices["pi-canary"], at=now - timedelta(minutes=3),
                           plugin="hello", version="1.1.0", kind="reverted",
                           detail="1.1.0 kept trapping in probation")
plugin = Plugin.objects.create(name="hello")
versions = {}
for serial, number in enumerate(("1.0.0", "1.1.0"), start=1):
    versions[number] = PluginVersion.objects.create(
        plugin=plugin, version=number, world="dashboard", manifest={}, sha256="0" * 64,
        size=1, compressed_size=1, status="approved", serial=serial)
release = Release.objects.create(plugin=plugin, version=versions["1.1.0"], serial=2,
                                 envelope={}, reason="approval")
rollout = Rollout.objects.create(
    plugin=plugin, version=versions["1.1.0"], release=release, target="all", status="halted",
    started_at=now - timedelta(minutes=5), auto_rollback=False,
    halt_reason="canary halted: 1 of 1 devices failed (halts at 5 devices or 10 %). "
    "pi-canary: reverted: 1.1.0 kept trapping in probation")
for index, (percent, size, status) in enumerate(((5, 1, "failed"), (25, 2, "cancelled"),
                                                  (100, 7, "cancelled"))):
    started = now - timedelta(minutes=5) if index == 0 else None
    Wave.objects.create(rollout=rollout, index=index, percent=percent, size=size,
                        status=status, started_at=started)
for n, device in enumerate(devices.values()):
    wave = 0 if device.name == "pi-canary" else (1 if n < 3 else 2)
    Member.objects.create(rollout=rollout, device=device, wave=wave,
                          state="reverted" if wave == 0 else "pending",
                          reason="reverted: 1.1.0 kept trapping in probation" if wave == 0 else "")
for minutes, kind, detail, counts in (
    (5, "started", "10 devices in 3 waves (1, 2, 7)", {"devices": 10, "waves": 3}),
    (5, "wave-started", "canary: 1 devices get hello 1.1.0 (serial 2)", {"devices": 1}),
    (4, "progress", "canary: 1 downloading", {"downloading": 1}),
    (3.5, "progress", "canary: 1 installed", {"installed": 1}),
    (3, "progress", "canary: 1 reverted", {"reverted": 1}),
    (3, "halted", rollout.halt_reason, {"reverted": 1, "pending": 0}),
):
    Decision.objects.create(rollout=rollout, at=now - timedelta(minutes=minutes), kind=kind,
                            wave=None if kind == "started" else 0, detail=detail, counts=counts)
print(rollout.pk)
"""

HEARTBEAT = """
from django.utils import timezone
from control_plane.devices.models import Device
Device.objects.filter(name="pi-drifting").update(
    last_seen=timezone.now(), drifting=False,
    reported_plugins=[{"name": "hello", "version": "1.1.0", "state": "running"}])
"""


class QuietFleetControlPlane(ControlPlaneProcess):
    """No device heartbeats here: a 60 s interval keeps the seeded devices online (for
    125 s) while the test looks; the page still polls every 5 s."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "CONTROL_PLANE_HEARTBEAT_INTERVAL_S": "60"}


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory) -> Iterator[ControlPlaneProcess]:
    process = QuietFleetControlPlane(tmp_path_factory.mktemp("fleet-pages"), worker=False)
    process.set_up()
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def rollout_id(control_plane: ControlPlaneProcess) -> int:
    return int(control_plane.manage("shell", "-c", SEED).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def admin(browser: Browser, control_plane: ControlPlaneProcess, rollout_id: int) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{control_plane.url}/accounts/login/?next=/fleet/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", control_plane.admin_password)
    page.click("button[type=submit], input[type=submit]")
    expect(page.locator("#counts")).to_be_visible()
    yield page
    page.close()


def test_the_overview_tells_the_truth_and_patches_rows_live(admin, control_plane):
    admin.goto(f"{control_plane.url}/fleet/")

    drifting = admin.locator("tr", has_text="pi-drifting")
    expect(drifting).to_contain_text("should run 1.1.0, runs 1.0.0")
    offline = admin.locator("tr", has_text="pi-offline")
    expect(offline).to_have_class("last-known")
    expect(offline).to_contain_text("last known")
    expect(offline.locator(".badge.running")).to_have_count(0)
    canary = admin.locator("tr", has_text="pi-canary")
    expect(canary).to_contain_text("reverted 1.1.0")
    expect(canary).to_contain_text("1.0.0: sensor timeout")
    expect(admin.locator("tr", has_text="pi-quarantined")).to_contain_text(
        "hello 1.0.0 quarantined"
    )
    expect(admin.locator("#count-drifting")).to_have_text("1")
    admin.screenshot(path=str(ARTIFACTS / "fleet-overview.png"), full_page=True)

    control_plane.manage("shell", "-c", HEARTBEAT)

    expect(drifting).to_contain_text("hello 1.1.0", timeout=15_000)
    expect(drifting).not_to_contain_text("should run")
    expect(admin.locator("#count-drifting")).to_have_text("0")
    expect(admin.locator("#refreshed")).to_contain_text("live: updated")


def test_the_rollout_page_explains_the_halt_and_its_buttons_act(admin, control_plane, rollout_id):
    admin.goto(f"{control_plane.url}/fleet/rollouts/{rollout_id}/")

    expect(admin.locator("#halt-reason")).to_contain_text("1 of 1 devices failed")
    expect(admin.locator("text=the wave stood at: 1 reverted")).to_be_visible()
    expect(admin.locator("svg polyline")).to_have_count(3)
    expect(admin.locator("button", has_text="Pause")).to_have_count(0)
    admin.screenshot(path=str(ARTIFACTS / "rollout-detail.png"), full_page=True)

    admin.click("button:has-text('Abort')")

    expect(admin.locator(".messages")).to_contain_text(f"Rollout #{rollout_id} aborted.")
    expect(admin.locator("#status")).to_have_text("aborted")
    expect(admin.locator("button", has_text="Abort")).to_have_count(0)
    expect(admin.locator("button", has_text="Roll back")).to_be_visible()


def test_the_rollouts_list_and_the_version_page(admin, control_plane, rollout_id):
    admin.goto(f"{control_plane.url}/fleet/rollouts/")
    expect(admin.locator("tr", has_text=f"#{rollout_id}")).to_contain_text("hello 1.1.0")

    admin.click("text=hello 1.1.0")

    expect(admin.locator("#failed ~ table").first).to_contain_text("pi-canary")
    expect(admin.locator("h2#desired")).to_contain_text("Should run hello 1.1.0")
    admin.screenshot(path=str(ARTIFACTS / "version-page.png"), full_page=True)


def test_a_device_page_shows_desired_against_running_and_its_history(admin, control_plane):
    admin.goto(f"{control_plane.url}/fleet/")
    admin.click("text=pi-canary")

    expect(admin.locator("body")).to_contain_text("1.0.0: sensor timeout")
    expect(admin.locator("body")).to_contain_text("reverted 1.1.0")
    expect(admin.locator("body")).to_contain_text("Rollouts it is in")
    admin.screenshot(path=str(ARTIFACTS / "device-detail.png"), full_page=True)
