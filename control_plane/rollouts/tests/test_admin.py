"""The rollout admin: a rollout started through the real form, a bad one refused by it."""

from __future__ import annotations

import pytest

from control_plane.rollouts.models import Rollout

pytestmark = pytest.mark.django_db


ROLLOUT_FORM = {
    "waves": "[5, 25, 100]",
    "soak_s": "300",
    "wave_timeout_s": "1800",
    "on_timeout": "skip",
    "success_pct": "90",
    "error_count": "5",
    "error_pct": "10",
    "max_traps": "2",
    "max_error_pct": "5",
    "min_requests": "20",
    "auto_rollback": "on",
}


def test_a_rollout_is_started_through_the_admin(admin_client, approved, enroll):
    device, _ = enroll()
    version = approved()

    answer = admin_client.post(
        "/admin/rollouts/rollout/add/",
        {**ROLLOUT_FORM, "version": version.pk, "target": "devices", "target_devices": [device.pk]},
        follow=True,
    )

    assert answer.status_code == 200
    rollout = Rollout.objects.get()
    assert (rollout.status, list(rollout.target_devices.all())) == ("running", [device])
    device.refresh_from_db()
    assert device.desired_sequence == 2  # the canary wave is this one device


def test_an_inconsistent_rollout_is_refused_by_the_form(admin_client, approved):
    answer = admin_client.post(
        "/admin/rollouts/rollout/add/",
        {**ROLLOUT_FORM, "version": approved().pk, "target": "tag", "waves": "[50, 20]"},
    )

    assert answer.status_code == 200
    page = answer.content.decode()
    assert "choose the tag whose devices get this version" in page
    assert "rising cumulative percentages" in page
    assert not Rollout.objects.exists()
