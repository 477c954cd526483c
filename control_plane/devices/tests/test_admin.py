"""The device admin: enrollment tokens shown once, re-tagging through the service."""

from __future__ import annotations

import pytest

from control_plane.devices.models import EnrollmentToken
from control_plane.devices.tokens import hash_token

pytestmark = pytest.mark.django_db


def test_a_new_enrollment_token_is_shown_once_and_stored_hashed(admin_client):
    answer = admin_client.post(
        "/admin/devices/enrollmenttoken/add/", {"label": "greenhouse", "uses_left": 3}
    )

    assert answer.status_code == 200
    secret = answer.context["secret"]
    token = EnrollmentToken.objects.get()
    assert token.token_hash == hash_token(secret) and token.uses_left == 3
    assert secret in answer.content.decode()
    assert (
        secret
        not in admin_client.get(
            f"/admin/devices/enrollmenttoken/{token.pk}/change/"
        ).content.decode()
    )


def test_the_device_admin_retags_through_the_service(admin_client, enroll):
    from control_plane.devices.models import Tag

    device, _ = enroll()
    tag = Tag.objects.create(name="canary")

    admin_client.post(
        f"/admin/devices/device/{device.pk}/change/",
        {"name": "pi-renamed", "tags": [tag.pk]},
    )

    device.refresh_from_db()
    assert device.name == "pi-renamed"
    assert list(device.tags.all()) == [tag]
