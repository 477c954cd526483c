"""Every write to builds goes through here: queueing compiles, recording them, signing them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from control_plane.builds.choices import ArtifactState
from control_plane.builds.interpreters import interpreter_for
from control_plane.builds.models import CompiledArtifact, DeviceClass
from control_plane.builds.signals import artifacts_signed
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from control_plane.signing import sign_compiled
from fleet_common.compiler.run import Compiled, engine_key_in_child
from fleet_common.compiler.settings import native_target
from fleet_common.footprint import Footprint

log = logging.getLogger(__name__)

CHECK_JOB = "control_plane.builds.jobs.check_version"
COMPILE_JOB = "control_plane.builds.jobs.compile_artifact"


def record_engine_key(device_class: DeviceClass) -> str:
    """Asks a compiler child for the class's engine key (0.15 s) and stores it on the class."""
    key = engine_key_in_child(device_class.settings, interpreter_for(device_class))
    DeviceClass.objects.filter(pk=device_class.pk).update(engine_key=key)
    device_class.engine_key = key
    return key


def enqueue_check(version: PluginVersion) -> None:
    """Queues the contract check (a native compile) of a freshly uploaded version."""
    async_task(CHECK_JOB, version.pk, task_name=f"check {version}"[:100], group="check")


def checking_class() -> DeviceClass | None:
    """The enabled class the check's native compile also produces an artifact for."""
    return (
        DeviceClass.objects.filter(enabled=True, target=native_target(), features=[])
        .order_by("name")
        .first()
    )


def enqueue_compiles(
    version: PluginVersion,
    *,
    skip: Iterable[DeviceClass] = (),
    only: DeviceClass | None = None,
) -> list[int]:
    """Creates (or requeues) the artifact of ``version`` for every enabled class; queues jobs.

    Only new and failed artifacts are queued, and none of the classes in ``skip``. Compiles
    for another CPU go to the cross queue, so they never delay a check.
    """
    skipped = {device_class.pk for device_class in skip}
    classes = DeviceClass.objects.filter(enabled=True).exclude(pk__in=skipped)
    if only is not None:
        classes = classes.filter(pk=only.pk)
    queued = []
    for device_class in classes:
        artifact, created = CompiledArtifact.objects.get_or_create(
            version=version, device_class=device_class
        )
        if not created and artifact.state != ArtifactState.FAILED:
            continue  # ready, or queued or compiling already: never two compiles of one
        CompiledArtifact.objects.filter(pk=artifact.pk).update(
            state=ArtifactState.QUEUED, error="", queued_at=timezone.now()
        )
        queued.append(artifact.pk)
        name = f"compile {version} for {device_class}"[:100]
        queue = None if device_class.target == native_target() else settings.CROSS_QUEUE
        transaction.on_commit(
            lambda pk=artifact.pk, name=name, queue=queue: async_task(  # type: ignore[misc]
                COMPILE_JOB, pk, task_name=name, group="compile", cluster=queue
            )
        )
    return queued


def compile_approved_for(device_class: DeviceClass) -> list[int]:
    """Queues every approved version's compile for a class (one just enabled or added):
    devices of that class get artifacts for what the fleet already runs, not only for what
    is uploaded next. Versions that have theirs are skipped."""
    if not device_class.enabled:
        return []
    queued = []
    for version in PluginVersion.objects.filter(
        status=VersionStatus.APPROVED, footprint__isnull=False
    ).exclude(artifacts__device_class=device_class):
        queued += enqueue_compiles(version, only=device_class)
    return queued


def start_compile(artifact: CompiledArtifact) -> CompiledArtifact:
    """Marks the artifact compiling and counts the attempt (a redelivered job counts again)."""
    CompiledArtifact.objects.filter(pk=artifact.pk).update(
        state=ArtifactState.COMPILING, started_at=timezone.now(), attempts=artifact.attempts + 1
    )
    artifact.refresh_from_db()
    return artifact


@transaction.atomic
def record_compiled(
    artifact: CompiledArtifact, compiled: Compiled, compressed_size: int, seconds: float
) -> CompiledArtifact:
    """Stores a finished compile; signs it at once if the version is approved already."""
    artifact = CompiledArtifact.objects.select_for_update().get(pk=artifact.pk)
    artifact.state = ArtifactState.READY
    artifact.engine_key = compiled.engine_key
    artifact.sha256 = compiled.artifact_sha256 or ""
    artifact.size = compiled.artifact_size
    artifact.compressed_size = compressed_size
    artifact.compile_seconds = round(seconds, 2)
    artifact.peak_rss_mib = round(compiled.peak_rss_kib / 1024, 1)
    artifact.finished_at = timezone.now()
    artifact.error = ""
    artifact.full_clean()
    artifact.save()
    DeviceClass.objects.filter(pk=artifact.device_class_id).update(engine_key=compiled.engine_key)
    log.info(
        "compiled %s: %s bytes in %.1f s, peak %.0f MiB",
        artifact,
        artifact.size,
        seconds,
        artifact.peak_rss_mib,
    )
    version = artifact.version
    if version.is_approved and sign_artifacts(version):
        transaction.on_commit(lambda: artifacts_signed.send(sender=PluginVersion, version=version))
    return artifact


def record_failure(artifact: CompiledArtifact, reason: str) -> None:
    CompiledArtifact.objects.filter(pk=artifact.pk).update(
        state=ArtifactState.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
    log.warning("compiling %s failed: %s", artifact, reason)


def sign_artifacts(version: PluginVersion) -> int:
    """Signs the compiled statement of each ready, unsigned artifact of an approved version."""
    if version.footprint is None:
        return 0  # checked before artifacts existed: nothing was compiled for it
    if version.release_envelope is None:
        return 0  # not approved: its artifacts are signed with its release
    release = json.loads(version.release_envelope["statement"])
    footprint = Footprint.from_json(version.footprint)
    signed = 0
    for artifact in version.artifacts.select_related("device_class").filter(
        state=ArtifactState.READY, envelope__isnull=True
    ):
        device_class = artifact.device_class
        engine = {
            "key": artifact.engine_key,
            "target": device_class.target,
            "features": device_class.features,
        }
        envelope = sign_compiled(release, engine, artifact.sha256, artifact.size or 0, footprint)
        CompiledArtifact.objects.filter(pk=artifact.pk).update(envelope=envelope)
        signed += 1
    return signed
