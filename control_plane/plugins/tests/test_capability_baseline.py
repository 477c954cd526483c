"""A review compares a version with what devices run, not with whatever was approved last."""

from __future__ import annotations

import uuid

import pytest

from control_plane.devices.models import Device
from control_plane.plugins.capabilities import capability_diff
from control_plane.plugins.models import PluginVersion

pytestmark = pytest.mark.django_db


def running(*versions: PluginVersion, state: str = "running", sha256: str | None = None) -> Device:
    """A device whose last heartbeat reported running ``versions``."""
    return Device.objects.create(
        name=f"pi-{uuid.uuid4().hex[:6]}",
        token_hash=uuid.uuid4().hex,
        reported_plugins=[
            {
                "name": version.plugin.name,
                "version": version.version,
                "sha256": sha256 or version.sha256,
                "state": state,
            }
            for version in versions
        ],
    )


def test_a_version_every_device_reverted_from_is_not_the_baseline(approved, upload):
    old = approved("1.0.0", dht22=[4])
    approved("1.1.0", dht22=[4, 5])
    for _ in range(3):
        running(old)
    candidate = upload("1.2.0", dht22=[4, 5])

    diff = capability_diff(candidate)

    assert diff.previous == "1.0.0" and diff.previous_devices == 3
    assert diff.added_pins == ["dht22 pin 5"]
    assert diff.heading == "compared with 1.0.0, which 3 devices run"


def test_with_no_device_reporting_the_baseline_is_the_last_approved(approved, upload):
    approved("1.0.0")
    approved("1.1.0", dht22=[4])

    diff = capability_diff(upload("1.2.0", dht22=[4]))

    assert diff.previous == "1.1.0" and diff.previous_devices == 0
    assert diff.unchanged
    assert diff.heading == (
        "compared with 1.1.0, the last approved "
        "(no device reports running an earlier approved version)"
    )


def test_the_version_most_devices_run_wins(approved, upload):
    old, middle = approved("1.0.0"), approved("1.1.0")
    running(old)
    running(middle)
    running(middle)

    diff = capability_diff(upload("1.2.0"))

    assert (diff.previous, diff.previous_devices) == ("1.1.0", 2)
    assert diff.heading == "compared with 1.1.0, which 2 devices run"


def test_a_tie_goes_to_the_later_version(approved, upload):
    old, middle = approved("1.0.0"), approved("1.1.0")
    running(old)
    running(middle)

    assert capability_diff(upload("1.2.0")).previous == "1.1.0"


def test_a_quarantined_version_is_still_what_the_device_runs(approved, upload):
    old = approved("1.0.0")
    approved("1.1.0")
    running(old, state="quarantined")

    diff = capability_diff(upload("1.2.0"))

    assert (diff.previous, diff.previous_devices) == ("1.0.0", 1)
    assert diff.heading == "compared with 1.0.0, which 1 device runs"


def test_reports_of_other_bytes_or_no_loaded_version_do_not_count(approved, upload):
    old = approved("1.0.0")
    approved("1.1.0")
    running(old, sha256="0" * 64)
    running(old, state="failed")

    assert capability_diff(upload("1.2.0")).previous == "1.1.0"


def test_versions_devices_run_after_this_one_are_never_its_baseline(approved):
    approved("1.0.0")
    middle = approved("1.1.0", dht22=[4])
    newest = approved("1.2.0")
    running(newest)
    running(middle)

    diff = capability_diff(middle)

    assert (diff.previous, diff.previous_devices) == ("1.0.0", 0)


def test_another_plugins_reports_do_not_count(approved, upload):
    clock = approved("1.0.0", name="clock")  # the same bytes and version string as hello's
    approved("1.0.0")
    approved("1.1.0")
    running(clock)

    assert capability_diff(upload("1.2.0")).previous == "1.1.0"


def test_the_admin_page_names_the_baseline_and_why(admin_client, approved, upload):
    old = approved("1.0.0")
    approved("1.1.0", dht22=[4])
    running(old)
    candidate = upload("1.2.0", dht22=[4])

    page = admin_client.get(f"/admin/plugins/pluginversion/{candidate.pk}/change/")

    assert "compared with 1.0.0, which 1 device runs:" in page.content.decode()
    assert "+ dht22 pin 4" in page.content.decode()
