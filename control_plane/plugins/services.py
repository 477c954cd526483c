"""Every write to plugins goes through here: upload, the check's verdict, approve (sign), reject."""

from __future__ import annotations

import hashlib
import logging

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.selectors import exists as blob_exists
from control_plane.blobs.services import delete_unreferenced, put
from control_plane.builds.services import enqueue_check, sign_artifacts
from control_plane.plugins.capabilities import derive_capabilities
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.components import ComponentSurface
from control_plane.plugins.models import Plugin, PluginVersion, Release
from control_plane.plugins.signals import version_approved
from control_plane.plugins.uploads import read_upload
from control_plane.signing import sign_release
from fleet_common.compiler.validate import Validated
from fleet_common.contract.check import COMPONENT_MAGIC, magic_problem
from fleet_common.footprint import Footprint, FootprintError, read_footprint
from fleet_common.limits import budget_problem
from fleet_common.manifest import Manifest, parse_manifest
from fleet_common.versions import version_key

log = logging.getLogger(__name__)

REJECTABLE = (VersionStatus.CHECKING, VersionStatus.INVALID, VersionStatus.PENDING)


def upload_plugin_version(
    *,
    component: bytes | None = None,
    manifest_text: str | None = None,
    bundle: bytes | None = None,
    uploaded_by: User | None = None,
) -> PluginVersion:
    """Stores an uploaded version and queues its check; returns it at once, being checked.

    Takes a component with its manifest.toml text, or a zip bundle holding both. Refuses
    at once, with a ValidationError keyed by field, what needs no compile: a bad manifest
    or bundle, bytes that are not a component or too large, a footprint over the manifest's
    memory cap, a version already uploaded, and one below the plugin's latest. The contract
    check and the compiles run as jobs (`control_plane.builds.jobs`). Nothing is left
    behind by a refusal or a failed write.
    """
    upload = read_upload(component=component, manifest_text=manifest_text, bundle=bundle)
    manifest = upload.manifest
    _check_version_is_new(manifest)
    footprint = _footprint(upload.component, manifest)
    sha256 = hashlib.sha256(upload.component).hexdigest()
    with transaction.atomic():  # the bytes and the version that references them, or neither
        blob = put(sha256=sha256, kind=BlobKind.COMPONENT, source=upload.component)
        version = _save_version(
            manifest, len(upload.component), blob.size, sha256, footprint, uploaded_by
        )
    enqueue_check(version)
    version.refresh_from_db()  # a synchronous queue (tests) has checked it already
    return version


def record_check(
    version: PluginVersion, validated: Validated | None, problem: str | None
) -> PluginVersion:
    """Stores the check's verdict: pending review, or invalid with the problem named."""
    with transaction.atomic():
        version = (
            PluginVersion.objects.select_for_update().select_related("plugin").get(pk=version.pk)
        )
        if validated is None:
            version.status = VersionStatus.INVALID
            version.problem = problem or "refused"
        else:
            manifest = parse_manifest(version.manifest, source="stored manifest")
            surface = ComponentSurface(
                imports=sorted(n for n in validated.surface.imports if not n.startswith("wasi:")),
                exports=sorted(validated.exports.values()),
            )
            version.capabilities = derive_capabilities(manifest, surface)
            version.footprint = validated.footprint.to_json()
            version.status = VersionStatus.PENDING
            version.problem = ""
        version.full_clean()
        version.save()
    log.info("checked %s: %s", version, version.problem or "valid")
    return version


def _footprint(component: bytes, manifest: Manifest) -> Footprint:
    """The component's footprint, refused now if it is no component or can never fit."""
    prefix = f"plugin {manifest.name} {manifest.version}"
    problem = magic_problem(component[: len(COMPONENT_MAGIC)])
    if problem is not None:
        raise ValidationError({"component": f"{prefix}: {problem}"})
    try:
        footprint = read_footprint(component)
    except FootprintError as exc:
        raise ValidationError({"component": f"{prefix}: not a valid component: {exc}"}) from None
    problem = budget_problem(footprint, manifest.limits.memory_mib)
    if problem is not None:
        raise ValidationError({"component": f"{prefix}: {problem}"})
    return footprint


def published_before(
    *, component: bytes | None = None, manifest_text: str | None = None, bundle: bytes | None = None
) -> PluginVersion | None:
    """The stored version with the same name, version and component bytes, if any.

    Raises a ValidationError if that version was uploaded with different bytes: a
    republished version must never silently mean two components.
    """
    upload = read_upload(component=component, manifest_text=manifest_text, bundle=bundle)
    manifest = upload.manifest
    existing = PluginVersion.objects.filter(
        plugin__name=manifest.name, version=manifest.version
    ).first()
    if existing is None:
        return None
    sha256 = hashlib.sha256(upload.component).hexdigest()
    if existing.sha256 != sha256:
        raise ValidationError(
            {
                "version": f"{existing} was already uploaded with a different component "
                f"(sha256 {existing.sha256[:12]}, this one {sha256[:12]}): raise the version"
            }
        )
    return existing


@transaction.atomic
def _save_version(
    manifest: Manifest,
    size: int,
    compressed_size: int,
    sha256: str,
    footprint: Footprint,
    uploaded_by: User | None,
) -> PluginVersion:
    plugin, _ = Plugin.objects.get_or_create(name=manifest.name)
    Plugin.objects.select_for_update().filter(pk=plugin.pk).get()
    _check_version_is_new(manifest)
    # An upload the check refused is replaced by the fixed one, under the same version.
    PluginVersion.objects.filter(
        plugin=plugin, version=manifest.version, status=VersionStatus.INVALID
    ).delete()
    version = PluginVersion(
        plugin=plugin,
        version=manifest.version,
        world=manifest.world,
        manifest=manifest.to_data(),
        sha256=sha256,
        size=size,
        compressed_size=compressed_size,
        footprint=footprint.to_json(),
        capabilities={"grants": manifest.capabilities.describe()},
        uploaded_by=uploaded_by,
    )
    version.full_clean()
    version.save()
    log.info("uploaded %s (sha256 %s)", version, sha256[:12])
    return version


def _check_version_is_new(manifest: Manifest) -> None:
    versions = list(
        PluginVersion.objects.filter(plugin__name=manifest.name)
        .exclude(status=VersionStatus.INVALID)
        .values_list("version", flat=True)
    )
    if manifest.version in versions:
        raise ValidationError(
            {"version": f"{manifest.name} {manifest.version} was already uploaded"}
        )
    latest = max(versions, key=version_key, default=None)
    if latest is not None and version_key(manifest.version) < version_key(latest):
        raise ValidationError(
            {
                "version": f"{manifest.name} {manifest.version} is lower than the latest "
                f"uploaded version {latest}; versions only go up (a rollback is a new, "
                "higher version of the old code)"
            }
        )


@transaction.atomic
def approve_plugin_version(*, version: PluginVersion, approved_by: User | None) -> PluginVersion:
    """Issues a pending version's first release, under the plugin's next serial.

    Its compiled artifacts are signed with it. Approval ships nothing: a rollout does.
    Raises ValidationError for a version that is not pending or whose artifact is missing,
    and `SigningKeyError` when there is no signing key.
    """
    version = PluginVersion.objects.select_related("plugin").get(pk=version.pk)
    if version.status != VersionStatus.PENDING:
        raise ValidationError(f"{version} is {version.get_status_display()}, not pending review")
    if not blob_exists(version.sha256, BlobKind.COMPONENT):
        raise ValidationError(f"{version}: its artifact {version.sha256[:12]} is missing")
    release = issue_release(version=version, reason="approved", allow_pending=True)
    version.serial = release.serial
    version.release_envelope = release.envelope
    version.status = VersionStatus.APPROVED
    version.reviewed_by = approved_by
    version.reviewed_at = timezone.now()
    version.full_clean()
    version.save()
    signed = sign_artifacts(version)
    log.info(
        "approved %s as serial %d (%d compiled artifacts signed)", version, version.serial, signed
    )
    transaction.on_commit(lambda: version_approved.send(sender=PluginVersion, version=version))
    return version


@transaction.atomic
def issue_release(*, version: PluginVersion, reason: str, allow_pending: bool = False) -> Release:
    """Signs ``version`` under its plugin's next serial: approval, or going back to it.

    The plugin row is locked, so two releases never get one serial. Raises ValidationError
    for a version that is not approved (unless it is being approved now).
    """
    Plugin.objects.select_for_update().filter(pk=version.plugin_id).get()
    allowed = (
        (VersionStatus.APPROVED, VersionStatus.PENDING)
        if allow_pending
        else (VersionStatus.APPROVED,)
    )
    if version.status not in allowed:
        raise ValidationError(
            f"{version} is {version.get_status_display()}; only approved code ships"
        )
    highest = Release.objects.filter(plugin_id=version.plugin_id).aggregate(highest=Max("serial"))[
        "highest"
    ]
    serial = (highest or 0) + 1
    release = Release(
        plugin_id=version.plugin_id,
        version=version,
        serial=serial,
        envelope=sign_release(version.manifest, serial, version.sha256, version.size),
        reason=reason[:200],
    )
    release.full_clean()
    release.save()
    log.info("issued %s: %s", release, reason)
    return release


def reject_plugin_version(
    *, version: PluginVersion, rejected_by: User | None, reason: str = ""
) -> PluginVersion:
    """Refuses a pending version; its artifact goes unless another live version shares it."""
    with transaction.atomic():
        version = (
            PluginVersion.objects.select_for_update().select_related("plugin").get(pk=version.pk)
        )
        if version.status not in REJECTABLE:
            raise ValidationError(
                f"{version} is {version.get_status_display()}, not pending review"
            )
        version.status = VersionStatus.REJECTED
        version.reviewed_by = rejected_by
        version.reviewed_at = timezone.now()
        version.rejection_reason = reason
        version.full_clean()
        version.save()
        sha256 = version.sha256
        delete_unreferenced(
            sha256,
            referenced=lambda: (
                PluginVersion.objects.filter(sha256=sha256)
                .exclude(status=VersionStatus.REJECTED)
                .exists()
            ),
        )
    log.info("rejected %s", version)
    return version
