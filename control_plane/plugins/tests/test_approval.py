"""Approving signs a release devices will verify; serials only grow; rejection cleans up."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from control_plane.plugins.capabilities import capability_diff
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.services import approve_plugin_version, reject_plugin_version
from control_plane.signing import load_signing_key
from fleet_common.wire.statements import Release, StatementError, key_id

pytestmark = pytest.mark.django_db


def trusted() -> dict[str, object]:
    public_key = load_signing_key().public_key()
    return {key_id(public_key): public_key}


def test_approval_signs_a_release_the_device_code_verifies(approved, hello):
    version = approved("1.0.0", dht22=[4])

    release = Release.from_envelope(version.release_envelope, trusted())

    assert (release.plugin, release.version, release.serial) == ("hello", "1.0.0", 1)
    assert (release.sha256, release.size) == (version.sha256, len(hello.component))
    assert release.manifest.capabilities.dht22_pins == frozenset({4})
    assert version.status == VersionStatus.APPROVED and version.reviewed_at is not None


def test_a_release_signed_by_another_key_is_not_trusted(approved):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key()

    with pytest.raises(StatementError, match="untrusted key"):
        Release.from_envelope(approved().release_envelope, {key_id(other): other})


def test_serials_grow_per_plugin_in_approval_order(upload, admin_user):
    first, second, other = upload("1.0.0"), upload("1.1.0"), upload("3.0.0", name="clock")

    serials = [
        approve_plugin_version(version=v, approved_by=admin_user).serial
        for v in (second, other, first)
    ]

    assert serials == [1, 1, 2]


def test_a_version_is_approved_only_once(approved, admin_user):
    version = approved()

    with pytest.raises(ValidationError, match="is approved, not pending review"):
        approve_plugin_version(version=version, approved_by=admin_user)


def test_a_rejected_version_cannot_be_approved(upload, admin_user):
    version = reject_plugin_version(version=upload(), rejected_by=admin_user, reason="no")

    with pytest.raises(ValidationError, match="is rejected, not pending review"):
        approve_plugin_version(version=version, approved_by=admin_user)


def test_approval_without_a_signing_key_says_how_to_make_one(
    upload, admin_user, settings, tmp_path
):
    from control_plane.signing import SigningKeyError

    settings.SIGNING_KEY_PATH = tmp_path / "missing.pem"
    version = upload()

    with pytest.raises(SigningKeyError, match=r"run: manage\.py create_signing_key"):
        approve_plugin_version(version=version, approved_by=admin_user)
    version.refresh_from_db()
    assert version.status == VersionStatus.PENDING


def test_rejecting_removes_an_artifact_no_live_version_uses(upload, admin_user, artifacts):
    version = upload()

    reject_plugin_version(version=version, rejected_by=admin_user)

    assert artifacts() == []


def test_rejecting_keeps_an_artifact_another_version_shares(upload, admin_user, artifacts):
    upload("1.0.0", name="clock")
    version = upload("1.0.0")

    reject_plugin_version(version=version, rejected_by=admin_user)

    assert len(artifacts()) == 1


def test_the_first_version_has_everything_new(upload):
    diff = capability_diff(upload("1.0.0", dht22=[4]))

    assert diff.previous is None
    assert diff.added_pins == ["dht22 pin 4"]
    assert diff.added_interfaces == ["fleet:plugin/log@0.1.0"]


def test_the_diff_compares_with_the_previously_approved_version(approved, upload):
    approved("1.0.0", dht22=[4], kv=64)
    approved("1.1.0", dht22=[4, 5], kv=64)
    candidate = upload("1.2.0", gpio_out=[17, 4], kv=1024, memory_mib=128)

    diff = capability_diff(candidate)

    assert diff.previous == "1.1.0"
    assert diff.added_pins == ["gpio out pin 4", "gpio out pin 17"]
    assert diff.removed_pins == ["dht22 pin 4", "dht22 pin 5"]
    assert diff.quota_changes == ["kv-quota-bytes 64 → 1024", "memory-mib 64 → 128"]
    assert diff.added_interfaces == diff.removed_interfaces == []
    assert "+ gpio out pin 17" in diff.describe()


def test_an_approved_version_is_compared_with_the_one_approved_before_it(approved):
    approved("1.0.0")
    middle = approved("1.1.0", dht22=[4])
    approved("1.2.0")

    assert capability_diff(middle).previous == "1.0.0"
    assert capability_diff(middle).added_pins == ["dht22 pin 4"]


def test_an_unchanged_version_has_an_empty_diff(approved, upload):
    approved("1.0.0", dht22=[4])

    assert capability_diff(upload("1.0.1", dht22=[4])).unchanged
