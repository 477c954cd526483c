"""What provisioning and upgrade tooling uses: /healthz and device maintenance."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from control_plane.devices.choices import Connectivity, EventKind
from control_plane.signing import signing_key_id

pytestmark = pytest.mark.django_db


def test_healthz_reports_the_version_and_signing_key(client):
    answer = client.get("/healthz")

    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["signing_key_id"] == signing_key_id()


def test_healthz_names_a_missing_signing_key(client, settings, tmp_path):
    settings.SIGNING_KEY_PATH = tmp_path / "missing.pem"

    answer = client.get("/healthz")

    assert answer.status_code == 503
    assert answer.json()["status"] == "failing"
    assert "signing key" in answer.json()["problems"][0]


def test_maintenance_marks_a_silent_device_as_expected_and_records_both_ends(enroll, capsys):
    device, _ = enroll("pi-7")

    call_command("device_maintenance", "pi-7", "start", "upgrading the host to 0.2.0")
    device.refresh_from_db()
    assert device.connectivity() == Connectivity.MAINTENANCE
    assert device.maintenance == "upgrading the host to 0.2.0"

    call_command("device_maintenance", str(device.pk), "finish", "upgraded")
    device.refresh_from_db()
    assert device.connectivity() == Connectivity.OFFLINE and device.maintenance == ""
    details = sorted(e.detail for e in device.events.filter(kind=EventKind.MAINTENANCE))
    assert details == ["finished: upgraded", "started: upgrading the host to 0.2.0"]
    assert "pi-7: maintenance finished: upgraded" in capsys.readouterr().out


def test_maintenance_of_an_unknown_device_is_refused_by_name():
    with pytest.raises(CommandError, match="no device named 'pi-404'"):
        call_command("device_maintenance", "pi-404", "start", "upgrade")


def test_the_fleet_page_shows_a_device_in_maintenance(admin_client, enroll):
    enroll("pi-7")
    call_command("device_maintenance", "pi-7", "start", "upgrading the host to 0.2.0")

    page = admin_client.get("/fleet/").content.decode()
    (listed,) = admin_client.get("/fleet/devices.json").json()["devices"]

    assert '<span class="badge maintenance">upgrading the host to 0.2.0</span>' in page
    assert listed["connectivity"] == "maintenance"
    assert listed["maintenance"] == "upgrading the host to 0.2.0"
