"""Uploading a plugin version: what is accepted, what is refused and why, what is stored."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
import wasmtime
import zstandard
from django.core.exceptions import ValidationError
from django.db import DatabaseError

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.selectors import copy_raw, find
from control_plane.conftest import manifest_text
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import Plugin, PluginVersion
from control_plane.plugins.services import upload_plugin_version
from fleet_common.manifest import load_manifest
from tests.runtime.wat_components import memory_hog

pytestmark = pytest.mark.django_db


def refusal(**upload) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as refused:
        upload_plugin_version(**upload)
    return refused.value.message_dict


def bundle(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_valid_component_is_stored_pending_with_its_capabilities(hello, artifacts):
    version = upload_plugin_version(
        component=hello.component, manifest_text=manifest_text(dht22=[4], kv=64)
    )

    sha256 = hashlib.sha256(hello.component).hexdigest()
    assert (version.plugin.name, version.version, version.world) == ("hello", "1.0.0", "dashboard")
    assert version.status == VersionStatus.PENDING and version.serial is None
    assert (version.sha256, version.size) == (sha256, len(hello.component))
    assert version.manifest["capabilities"] == {"dht22": [4], "gpio-out": [], "kv-quota-bytes": 64}
    assert version.capabilities["grants"] == ["dht22 pin 4", "kv 64 bytes"]
    assert version.capabilities["imports"] == ["fleet:plugin/log@0.1.0"]
    assert "fleet:plugin/http-handler@0.1.0" in version.capabilities["exports"]
    assert artifacts() == [sha256]
    stored = find(sha256, BlobKind.COMPONENT)
    assert stored is not None and version.compressed_size == stored.size < version.size
    assert zstandard.ZstdDecompressor().decompress(b"".join(stored.chunks())) == hello.component
    raw = io.BytesIO()
    copy_raw(sha256, BlobKind.COMPONENT, raw)
    assert raw.getvalue() == hello.component


def test_a_zip_bundle_with_a_top_level_folder_is_accepted(hello):
    archive = bundle(
        {"hello/manifest.toml": hello.manifest.encode(), "hello/hello.wasm": hello.component}
    )

    version = upload_plugin_version(bundle=archive)

    assert str(version) == "hello 1.0.0"


def test_bytes_that_are_not_webassembly_are_refused(artifacts):
    errors = refusal(component=b"print('hi')\n", manifest_text=manifest_text())

    assert errors == {
        "component": [
            "plugin hello 1.0.0: is not WebAssembly (starts with 70 72 69 6e 74 28 27 68)"
        ]
    }
    assert artifacts() == [] and not PluginVersion.objects.exists()


def test_a_core_module_is_refused_as_not_a_component():
    core = wasmtime.wat2wasm("(module)")

    errors = refusal(component=core, manifest_text=manifest_text())

    assert "is a core WebAssembly module, not a component" in errors["component"][0]


def checked_invalid(**upload) -> str:
    """Uploads what only the background check can refuse; returns the problem it names."""
    version = upload_plugin_version(**upload)
    assert version.status == VersionStatus.INVALID and version.serial is None
    assert not version.artifacts.exists()
    return version.problem


def test_a_component_of_another_world_is_checked_invalid(hello):
    message = checked_invalid(
        component=hello.component, manifest_text=manifest_text(world="automation")
    )

    assert "does not export fleet:plugin/control-loop@0.1.0, which world automation requires" in (
        message
    )
    assert "exports fleet:plugin/http-handler@0.1.0, which world automation does not have" in (
        message
    )


def test_an_invalid_version_can_be_uploaded_again_once_fixed(hello):
    checked_invalid(component=hello.component, manifest_text=manifest_text(world="automation"))

    fixed = upload_plugin_version(component=hello.component, manifest_text=manifest_text())

    assert fixed.status == VersionStatus.PENDING
    assert PluginVersion.objects.filter(plugin__name="hello").count() == 1


def test_an_import_the_manifest_does_not_grant_is_checked_invalid(lab):
    message = checked_invalid(
        component=lab.component, manifest_text=manifest_text("lab", dht22=[4])
    )

    assert "dht22" not in message
    assert (
        "imports fleet:plugin/gpio@0.1.0, which its manifest does not grant "
        "(that needs [capabilities] gpio-out = [<pin>])"
    ) in message
    assert "fleet:plugin/kv@0.1.0, which its manifest does not grant" in message


def test_the_same_version_twice_is_refused(upload, hello, artifacts):
    upload("1.0.0")

    errors = refusal(component=hello.component, manifest_text=manifest_text(version="1.0.0"))

    assert errors == {"version": ["hello 1.0.0 was already uploaded"]}
    assert PluginVersion.objects.count() == 1 and len(artifacts()) == 1


def test_a_version_below_the_latest_is_refused(upload, hello):
    upload("1.2.0")

    errors = refusal(component=hello.component, manifest_text=manifest_text(version="1.1.9"))

    assert errors["version"][0].startswith(
        "hello 1.1.9 is lower than the latest uploaded version 1.2.0"
    )


def test_a_prerelease_of_the_latest_version_counts_as_lower(upload, hello):
    upload("2.0.0")

    errors = refusal(component=hello.component, manifest_text=manifest_text(version="2.0.0-rc.1"))

    assert "lower than the latest uploaded version 2.0.0" in errors["version"][0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name = "Hello"\nversion = "1.0.0"\nworld = "dashboard"\n', "name 'Hello' must be"),
        ('name = "hello"\nversion = "one"\nworld = "dashboard"\n', "is not a semantic version"),
        ('name = "hello"\nversion = "1.0.0"\nworld = "toaster"\n', "world 'toaster' is not one"),
        (
            manifest_text(dht22=[40]),
            "pins [40] are not BCM GPIO pins",
        ),
        ("name = hello", "manifest.toml is not valid TOML"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_problem(hello, text, expected):
    errors = refusal(component=hello.component, manifest_text=text)

    assert expected in errors["manifest"][0]


def test_a_file_that_is_not_a_zip_is_refused_as_a_bundle():
    errors = refusal(bundle=b"this is not a zip archive")

    assert errors["bundle"][0].startswith("the bundle is not a zip archive")


def test_a_bundle_without_a_manifest_is_refused(hello):
    errors = refusal(bundle=bundle({"hello.wasm": hello.component}))

    assert errors == {"bundle": ["the bundle must hold exactly one manifest.toml (found none)"]}


def test_a_bundle_missing_the_named_component_is_refused(hello):
    errors = refusal(bundle=bundle({"manifest.toml": hello.manifest.encode(), "x.wasm": b""}))

    assert errors == {"bundle": ["the bundle has no hello.wasm, the component its manifest names"]}


def test_a_corrupt_bundle_entry_is_refused(hello):
    archive = bytearray(
        bundle({"manifest.toml": hello.manifest.encode(), "hello.wasm": hello.component})
    )
    archive[200:260] = bytes(60)

    errors = refusal(bundle=bytes(archive))

    assert errors["bundle"][0].startswith("cannot read hello.wasm")


def test_a_component_without_a_manifest_is_refused(hello):
    errors = refusal(component=hello.component)

    assert "upload the component and its manifest.toml" in errors["component"][0]


def test_a_failed_database_write_leaves_no_artifact_behind(hello, artifacts, monkeypatch):
    def fail(*args, **kwargs):
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(PluginVersion, "save", fail)

    with pytest.raises(DatabaseError):
        upload_plugin_version(component=hello.component, manifest_text=manifest_text())

    assert artifacts() == []
    assert not Plugin.objects.exists()


def test_a_failed_write_keeps_an_artifact_another_version_uses(
    upload, hello, artifacts, monkeypatch
):
    upload("1.0.0")
    monkeypatch.setattr(
        PluginVersion, "save", lambda *a, **k: (_ for _ in ()).throw(DatabaseError())
    )

    with pytest.raises(DatabaseError):
        upload_plugin_version(component=hello.component, manifest_text=manifest_text("other"))

    assert len(artifacts()) == 1


def test_the_publish_command_uploads_approves_and_assigns_a_built_folder(build, enroll, capsys):
    from django.core.management import call_command

    device, _ = enroll()

    call_command("publish_plugin", str(build("hello")), "--assign", "all")

    out = capsys.readouterr().out
    assert "uploaded hello 1.0.0" in out and "approved hello 1.0.0 as serial 1" in out
    device.refresh_from_db()
    assert device.desired_sequence == 2


def test_the_publish_command_reports_a_refusal(build):
    from django.core.management import CommandError, call_command

    call_command("publish_plugin", str(build("hello")))

    with pytest.raises(CommandError, match=r"hello 1\.0\.0 was already uploaded"):
        call_command("publish_plugin", str(build("hello")))


def test_publishing_the_same_version_again_with_skip_existing_changes_nothing(build, capsys):
    from django.core.management import call_command

    call_command("publish_plugin", str(build("hello")), "--assign", "all")
    capsys.readouterr()

    call_command("publish_plugin", str(build("hello")), "--assign", "all", "--skip-existing")

    assert "hello 1.0.0 was published before" in capsys.readouterr().out
    assert PluginVersion.objects.filter(plugin__name="hello").count() == 1


def test_skip_existing_refuses_a_version_republished_with_other_bytes(build, hello, tmp_path):
    from django.core.management import CommandError, call_command

    call_command("publish_plugin", str(build("hello")))
    other = tmp_path / "hello"
    other.mkdir()
    (other / "manifest.toml").write_text(hello.manifest)
    component = load_manifest(build("hello") / "manifest.toml").component
    (other / component).write_bytes(hello.component + b"\0")

    with pytest.raises(CommandError, match="already uploaded with a different component"):
        call_command("publish_plugin", str(other), "--skip-existing")


def test_a_component_whose_memories_exceed_the_memory_cap_is_refused_naming_the_total(
    artifacts, tmp_path
):
    hog = memory_hog(tmp_path / "hog.wasm", memories=8, pages=1000).read_bytes()

    errors = refusal(component=hog, manifest_text=manifest_text())

    assert errors == {
        "component": [
            "plugin hello 1.0.0: declares 8 linear memories of 500.0 MiB and tables of 0 KiB "
            "at start, 500.0 MiB in all, more than its memory-mib = 64"
        ]
    }
    assert artifacts() == [] and not PluginVersion.objects.exists()
