"""The plugin admin: upload through the real form, approve behind a permission, outcomes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from control_plane.conftest import manifest_text
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion

pytestmark = pytest.mark.django_db

ADD = "/admin/plugins/pluginversion/add/"
CHANGELIST = "/admin/plugins/pluginversion/"


def files(component: bytes, manifest: str) -> dict[str, SimpleUploadedFile]:
    return {
        "component": SimpleUploadedFile("hello.wasm", component),
        "manifest_file": SimpleUploadedFile("manifest.toml", manifest.encode()),
    }


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_a_staff_user_uploads_through_the_admin_form(client, reviewer, hello, artifacts):
    client.force_login(reviewer)

    answer = client.post(ADD, files(hello.component, hello.manifest), follow=True)

    version = PluginVersion.objects.get()
    assert answer.redirect_chain[-1][0] == f"/admin/plugins/pluginversion/{version.pk}/change/"
    assert messages_of(answer) == [
        "Uploaded hello 1.0.0: it is being checked in the background (the contract check, "
        "then a compile per device class); this page shows the verdict."
    ]
    assert version.uploaded_by == reviewer and len(artifacts()) == 1
    page = answer.content.decode()
    assert "fleet:plugin/log@0.1.0" in page
    assert "first approved version of this plugin" in page
    assert "Approve and sign" in page


def test_a_refused_upload_returns_to_the_form_with_the_reason(client, reviewer, artifacts):
    client.force_login(reviewer)

    answer = client.post(ADD, files(b"\x00asm\x01\x00\x00\x00", manifest_text()), follow=True)

    assert answer.redirect_chain[-1][0] == ADD
    [message] = messages_of(answer)
    assert message.startswith("Refused: component: plugin hello 1.0.0: is a core WebAssembly")
    assert not PluginVersion.objects.exists() and artifacts() == []


def test_the_form_wants_a_component_with_its_manifest_or_a_bundle(client, reviewer, hello):
    client.force_login(reviewer)

    answer = client.post(ADD, {"component": SimpleUploadedFile("hello.wasm", hello.component)})

    assert answer.status_code == 200
    assert "Upload the component together with its manifest.toml" in answer.content.decode()


def test_the_approve_action_signs_the_selected_version(client, reviewer, upload):
    version = upload()
    client.force_login(reviewer)

    answer = client.post(
        CHANGELIST, {"action": "approve", "_selected_action": [version.pk]}, follow=True
    )

    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED and version.serial == 1
    assert version.reviewed_by == reviewer
    assert messages_of(answer) == [
        "Approved hello 1.0.0 as serial 1; signed, with its compiled artifacts for x86_64. "
        "Nothing ships until you start a rollout of it (on its page)."
    ]


def test_a_version_still_being_checked_is_not_approved_with_a_clear_message(
    client, reviewer, upload
):
    version = upload()
    PluginVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHECKING)
    client.force_login(reviewer)

    answer = client.post(
        CHANGELIST, {"action": "approve", "_selected_action": [version.pk]}, follow=True
    )

    version.refresh_from_db()
    assert version.status == VersionStatus.CHECKING and version.serial is None
    assert messages_of(answer) == [
        "hello 1.0.0 is still being checked; approve it when the check finished."
    ]


def test_the_page_of_a_version_being_checked_says_so_and_offers_no_approval(
    client, reviewer, upload
):
    version = upload()
    PluginVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHECKING)
    client.force_login(reviewer)

    page = client.get(f"{CHANGELIST}{version.pk}/change/").content.decode()

    assert "being checked" in page and "reload for its verdict" in page
    assert "Approve and sign" not in page


def test_the_page_of_an_invalid_version_shows_its_problem(client, reviewer, upload):
    version = upload()
    PluginVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.INVALID, problem="imports fleet:plugin/nope@9.9.9"
    )
    client.force_login(reviewer)

    page = client.get(f"{CHANGELIST}{version.pk}/change/").content.decode()
    answer = client.post(
        CHANGELIST, {"action": "approve", "_selected_action": [version.pk]}, follow=True
    )

    assert "invalid: imports fleet:plugin/nope@9.9.9" in page
    assert messages_of(answer) == [
        "hello 1.0.0 is invalid and cannot be approved: imports fleet:plugin/nope@9.9.9"
    ]


def test_approving_needs_the_approve_permission(client, reviewer, upload):
    reviewer.user_permissions.remove(Permission.objects.get(codename="approve_pluginversion"))
    version = upload()
    client.force_login(reviewer)

    answer = client.post(
        CHANGELIST, {"action": "approve", "_selected_action": [version.pk]}, follow=True
    )

    version.refresh_from_db()
    assert version.status == VersionStatus.PENDING
    assert "Approve and sign" not in answer.content.decode()


def test_the_reject_action_rejects(client, reviewer, upload):
    version = upload()
    client.force_login(reviewer)

    client.post(CHANGELIST, {"action": "reject", "_selected_action": [version.pk]})

    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED


def test_an_approved_version_page_offers_a_rollout_and_shows_what_devices_did(
    admin_client, approved, enroll
):
    from datetime import UTC, datetime

    from control_plane.devices.services import record_heartbeat
    from control_plane.rollouts.services import assign_now
    from fleet_common.wire.heartbeat import EventReport, Heartbeat, PluginReport

    version = approved()
    page = admin_client.get(f"{CHANGELIST}{version.pk}/change/").content.decode()
    assert "none yet: approved versions reach devices only through a rollout" in page
    assert f"/admin/rollouts/rollout/add/?version={version.pk}" in page
    assert "no device has reported it yet" in page

    _, secret = enroll()
    rollout = assign_now(version=version, target="all")
    refused = EventReport(datetime.now(UTC), "hello", "1.0.0", "refused", "no room")
    record_heartbeat(
        device_token=secret,
        heartbeat=Heartbeat("0.1.0", None, (PluginReport("hello"),), events=(refused,)),
    )

    page = admin_client.get(f"{CHANGELIST}{version.pk}/change/").content.decode()
    assert "0 ran it · 0 installed · 1 refused · 0 reverted · 0 quarantined" in page
    assert f"/fleet/rollouts/{rollout.pk}/" in page and "completed" in page
