"""The admin of builds: device classes, compiled artifacts, and a version's artifacts page."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.utils import timezone

from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact, DeviceClass
from control_plane.devices.models import Device, DeviceEvent
from fleet_common.compiler.settings import native_target
from tests.support import ARTIFACTS, CHROMIUM_FLAGS

pytestmark = pytest.mark.django_db

CLASSES = "/admin/builds/deviceclass/"
ARTIFACT_LIST = "/admin/builds/compiledartifact/"


def version_page(client, version) -> str:
    answer = client.get(f"/admin/plugins/pluginversion/{version.pk}/change/")
    assert answer.status_code == 200
    return answer.content.decode()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def native_class() -> DeviceClass:
    return DeviceClass.objects.get(name="x86_64")


def device(name: str, engine_key: str = "") -> Device:
    return Device.objects.create(name=name, token_hash=uuid.uuid4().hex, engine_key=engine_key)


def class_form(device_class: DeviceClass, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": device_class.name,
        "description": device_class.description,
        "target": device_class.target,
        "features": " ".join(device_class.features),
        "enabled": "on" if device_class.enabled else "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def fail(artifact: CompiledArtifact, reason: str = "the compiler ran out of memory") -> None:
    CompiledArtifact.objects.filter(pk=artifact.pk).update(
        state=ArtifactState.FAILED, error=reason, envelope=None
    )


# --- device classes -------------------------------------------------------------------------


def test_the_class_list_shows_each_class_its_key_and_the_devices_reporting_it(admin_client, upload):
    upload()  # the check's native compile tells the class its engine key
    key = native_class().engine_key
    device("pi-1", key)
    device("pi-2", key)
    device("pi-3", "f" * 64)

    page = admin_client.get(CLASSES).content.decode()

    assert key and f'<code title="{key}">{key[:12]}</code>' in page
    row = re.search(r"<tr[^>]*>.*?x86_64.*?</tr>", page, re.S)
    assert row is not None and '<td class="field-devices_reporting">2</td>' in row.group(0)
    assert "has_dotprod has_fp16 has_lse has_rcpc" in page  # the pi5 class, disabled
    assert "Any x86_64 machine" in page


def test_a_feature_that_is_no_isa_flag_is_refused_by_the_form(admin_client):
    pi5 = DeviceClass.objects.get(name="pi5")

    answer = admin_client.post(
        f"{CLASSES}{pi5.pk}/change/", class_form(pi5, features="has_lse lse-please")
    )

    assert answer.status_code == 200
    assert "&#x27;lse-please&#x27; is not an ISA feature flag (has_...)" in answer.content.decode()
    pi5.refresh_from_db()
    assert pi5.features == ["has_dotprod", "has_fp16", "has_lse", "has_rcpc"]


def test_new_features_are_stored_sorted_and_forget_the_old_engine_key(admin_client):
    aarch64 = DeviceClass.objects.get(name="aarch64")
    DeviceClass.objects.filter(pk=aarch64.pk).update(engine_key="a" * 64)

    answer = admin_client.post(
        f"{CLASSES}{aarch64.pk}/change/",
        class_form(aarch64, features="has_lse, has_crc has_lse", description="Pi 4 and 5"),
        follow=True,
    )

    aarch64.refresh_from_db()
    assert aarch64.features == ["has_crc", "has_lse"] and aarch64.description == "Pi 4 and 5"
    assert aarch64.engine_key == ""
    assert any("devices whose engine reports the new key" in m for m in messages_of(answer))


def test_editing_only_the_description_keeps_the_engine_key(admin_client):
    aarch64 = DeviceClass.objects.get(name="aarch64")
    DeviceClass.objects.filter(pk=aarch64.pk).update(engine_key="a" * 64)

    admin_client.post(f"{CLASSES}{aarch64.pk}/change/", class_form(aarch64, description="Pis"))

    aarch64.refresh_from_db()
    assert aarch64.description == "Pis" and aarch64.engine_key == "a" * 64


# --- compiled artifacts ---------------------------------------------------------------------


def test_the_artifact_list_shows_each_compile_and_filters_by_state(admin_client, approved):
    approved()
    artifact = CompiledArtifact.objects.get()

    page = admin_client.get(ARTIFACT_LIST).content.decode()
    failed_only = admin_client.get(ARTIFACT_LIST, {"state": "failed"}).content.decode()

    assert "hello 1.0.0" in page and "x86_64" in page and "ready" in page
    assert f"{artifact.size / (1024 * 1024):.1f} MiB" in page
    assert 'alt="True"' in page  # signed at approval
    assert "0 compiled artifacts" in failed_only


def test_an_artifact_page_is_read_only(admin_client, approved):
    approved()
    artifact = CompiledArtifact.objects.get()

    page = admin_client.get(f"{ARTIFACT_LIST}{artifact.pk}/change/").content.decode()

    assert artifact.sha256 in page and "signed with key" in page
    assert 'name="_save"' not in page


def test_compile_again_compiles_a_failed_artifact(
    admin_client, upload, django_capture_on_commit_callbacks
):
    version = upload()
    artifact = CompiledArtifact.objects.get()
    fail(artifact)

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            ARTIFACT_LIST,
            {"action": "compile_again", "_selected_action": [artifact.pk]},
            follow=True,
        )

    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.READY and artifact.error == ""
    assert artifact.attempts == 2
    assert messages_of(answer) == [f"Queued {version} to compile again for x86_64."]


def test_compile_again_leaves_a_ready_artifact_alone(admin_client, upload):
    upload()
    artifact = CompiledArtifact.objects.get()

    answer = admin_client.post(
        ARTIFACT_LIST, {"action": "compile_again", "_selected_action": [artifact.pk]}, follow=True
    )

    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.READY and artifact.attempts == 1
    assert messages_of(answer) == [
        "hello 1.0.0 for x86_64 is ready: only failed compiles run again."
    ]


def test_compile_again_refuses_a_disabled_class(admin_client, upload):
    upload()
    artifact = CompiledArtifact.objects.get()
    fail(artifact)
    DeviceClass.objects.filter(pk=artifact.device_class_id).update(enabled=False)

    answer = admin_client.post(
        ARTIFACT_LIST, {"action": "compile_again", "_selected_action": [artifact.pk]}, follow=True
    )

    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.FAILED
    assert messages_of(answer) == [
        "hello 1.0.0 for x86_64: the class x86_64 is disabled; enable it first."
    ]


def test_compiling_again_needs_the_permission(client, reviewer, upload):
    upload()
    artifact = CompiledArtifact.objects.get()
    fail(artifact)
    reviewer.user_permissions.add(Permission.objects.get(codename="view_compiledartifact"))
    client.force_login(reviewer)

    page = client.get(ARTIFACT_LIST).content.decode()

    assert "hello 1.0.0" in page and "compile_again" not in page


# --- a version's page -----------------------------------------------------------------------


def test_the_version_page_has_a_row_per_device_class(admin_client, upload):
    version = upload()
    artifact = CompiledArtifact.objects.get()
    DeviceClass.objects.filter(name="aarch64").update(enabled=True)

    page = version_page(admin_client, version)

    table = page[page.index('<table class="compiled-artifacts">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert [re.search(r">([a-z0-9_]+)</span>", row).group(1) for row in rows] == [
        "aarch64",
        "x86_64",
    ]
    aarch64, x86_64 = rows
    assert "not compiled" in aarch64
    assert "<td>ready</td>" in x86_64 and artifact.engine_key[:12] in x86_64
    assert f"<td>{artifact.compile_seconds:.1f} s</td>" in x86_64
    assert f"<td>{artifact.peak_rss_mib:.0f} MiB</td>" in x86_64
    assert "<td>1</td>" in x86_64 and "<td>when approved</td>" in x86_64
    assert "pi5" not in table  # disabled and never compiled for


def test_the_version_page_shows_a_failed_compile_with_its_error(admin_client, upload):
    version = upload()
    fail(CompiledArtifact.objects.get(), "wasmtime: unsupported feature has_sve")

    page = version_page(admin_client, version)

    assert "<td>failed</td>" in page
    assert '<span class="problem">wasmtime: unsupported feature has_sve</span>' in page


def test_an_approved_versions_artifacts_are_signed(admin_client, approved):
    page = version_page(admin_client, approved())

    assert "<td>signed</td>" in page


def test_the_version_page_lists_devices_that_got_no_artifact(admin_client, approved):
    version = approved()
    pi = device("pi-zero")
    now = timezone.now()
    for minutes in range(25):
        DeviceEvent.objects.create(
            device=pi,
            at=now - timedelta(minutes=minutes),
            plugin="hello",
            version="1.0.0",
            kind="no-artifact",
            detail=f"no artifact for engine {minutes:02d}",
        )
    DeviceEvent.objects.create(
        device=pi,
        at=now + timedelta(minutes=1),
        plugin="hello",
        version="0.9.0",
        kind="no-artifact",
        detail="of another version",
    )

    page = version_page(admin_client, version)

    assert page.count("no artifact for engine") == 20
    assert "no artifact for engine 00" in page and "no artifact for engine 20" not in page
    assert f'href="/admin/devices/device/{pi.pk}/change/">pi-zero</a>' in page
    assert "of another version" not in page


def test_a_version_no_device_missed_says_so(admin_client, approved):
    assert "no device reported one missing" in version_page(admin_client, approved())


@pytest.mark.slow
def test_the_version_page_reads_well_in_a_browser(admin_client, approved):
    """Keeps tests/artifacts/version-artifacts.png for a person to look at."""
    from playwright.sync_api import Route, sync_playwright

    version = approved()
    DeviceClass.objects.filter(name="aarch64").update(enabled=True)
    fail(
        CompiledArtifact.objects.create(
            version=version, device_class=DeviceClass.objects.get(name="aarch64"), attempts=2
        ),
        "emulated compile timed out after 600 s",
    )
    DeviceEvent.objects.create(
        device=device("pi-zero"),
        at=timezone.now(),
        plugin="hello",
        version="1.0.0",
        kind="no-artifact",
        detail="no compiled artifact for engine 3f2a91c0d4e5",
    )
    url = f"/admin/plugins/pluginversion/{version.pk}/change/"
    html = version_page(admin_client, version)

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix("http://testserver")
        if path == url:
            route.fulfill(body=html, content_type="text/html; charset=utf-8")
            return
        found = finders.find(path.removeprefix("/static/")) if path.startswith("/static/") else None
        if found is None:
            route.fulfill(status=404)
        else:
            route.fulfill(path=Path(found))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[flag for flag in CHROMIUM_FLAGS if flag != "--headless"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.route("http://testserver/**", serve)
        page.goto(f"http://testserver{url}")
        page.click("#toggle-nav-sidebar")  # the page's full width for its content
        page.screenshot(path=str(ARTIFACTS / "version-artifacts.png"), full_page=True)
        assert page.locator("table.compiled-artifacts tbody tr").count() == 2
        browser.close()


def test_a_class_added_later_gets_every_approved_version_compiled_and_signed(
    admin_client, approved, django_capture_on_commit_callbacks
):
    version = approved()
    late = DeviceClass.objects.create(name="x86-late", target=native_target())

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            CLASSES, {"action": "compile_approved", "_selected_action": [late.pk]}, follow=True
        )

    artifact = CompiledArtifact.objects.get(version=version, device_class=late)
    assert artifact.state == ArtifactState.READY and artifact.envelope is not None
    assert messages_of(answer) == ["Queued 1 approved version(s) to compile for x86-late."]
