"""The jobs the worker (``manage.py qcluster``) runs: check a version, compile it for a class.

Both are idempotent: a job redelivered after its worker died (django-q's ``retry``) finds
what the first run finished and does only the rest. Compiles run in a child process
(natively, or an emulated arm64 Python for the Pis), so the worker never holds a
compile's memory, and the child dies with the worker.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.selectors import copy_raw
from control_plane.builds.choices import ArtifactState
from control_plane.builds.interpreters import interpreter_for
from control_plane.builds.models import CompiledArtifact, DeviceClass
from control_plane.builds.services import (
    checking_class,
    enqueue_compiles,
    record_compiled,
    record_engine_key,
    record_failure,
    start_compile,
)
from control_plane.builds.storage import SCRATCH_PREFIX, scratch_dir, store_compiled
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from control_plane.plugins.services import record_check
from fleet_common.compiler.emulation import EmulationUnavailable
from fleet_common.compiler.run import (
    CompileFailed,
    CompileJob,
    compile_in_child,
)
from fleet_common.compiler.settings import EngineSettings
from fleet_common.compiler.validate import validate_file
from fleet_common.errors import ManifestError, PluginLoadError
from fleet_common.manifest import parse_manifest

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Compiles of one artifact started; one that kills its worker each time stops here."""


def check_version(version_id: int) -> str:
    """Checks an uploaded version as a device will; its native compile is kept as the
    artifact of this machine's class. Then queues the compiles for the other classes."""
    version = PluginVersion.objects.select_related("plugin").get(pk=version_id)
    if version.status != VersionStatus.CHECKING:
        return f"{version} is {version.status} already"
    device_class = checking_class()
    engine = device_class.settings if device_class is not None else EngineSettings()
    started = time.monotonic()
    with _component_file(version) as source, _artifact_file(version, device_class) as scratch:
        try:
            manifest = parse_manifest(version.manifest, source="stored manifest")
            validated = validate_file(source, manifest, engine, scratch)
        except (PluginLoadError, ManifestError) as exc:
            reason = exc.reason if isinstance(exc, PluginLoadError) else str(exc)
            record_check(version, None, reason)
            return f"{version} is invalid: {reason}"
        # The artifact first: once the version is pending it may be approved at once, and
        # its first desired states must carry the artifact, or devices compile for themselves.
        compiled = validated.compiled
        if device_class is not None and compiled.artifact_sha256 is not None:
            artifact, _ = CompiledArtifact.objects.get_or_create(
                version=version, device_class=device_class
            )
            artifact = start_compile(artifact)
            size = store_compiled(scratch, compiled.artifact_sha256)
            record_compiled(artifact, compiled, size, time.monotonic() - started)
        version = record_check(version, validated, None)
    skip = [device_class] if device_class is not None else []
    enqueue_compiles(version, skip=skip)
    return f"{version} checked"


def compile_artifact(artifact_id: int) -> str:
    """Compiles one version for one device class and stores the artifact."""
    artifact = CompiledArtifact.objects.select_related("version__plugin", "device_class").get(
        pk=artifact_id
    )
    if artifact.state == ArtifactState.READY:
        return f"{artifact} is ready already"
    if artifact.attempts >= MAX_ATTEMPTS:
        # django-q hands a job out again each time its worker dies, for ever.
        record_failure(artifact, f"gave up after {artifact.attempts} attempts killed its worker")
        return f"{artifact} failed"
    artifact = start_compile(artifact)
    device_class: DeviceClass = artifact.device_class
    version: PluginVersion = artifact.version
    started = time.monotonic()
    with _component_file(version) as source, _artifact_file(version, device_class) as scratch:
        try:
            job = CompileJob(
                source,
                version.sha256,
                scratch,
                device_class.settings,
                interpreter_for(device_class),
            )
            compiled = compile_in_child(job)
        except (CompileFailed, EmulationUnavailable, OSError) as exc:
            reason = exc.reason if isinstance(exc, CompileFailed) else str(exc)
            record_failure(artifact, reason)
            return f"{artifact} failed: {reason}"
        if compiled.artifact_sha256 is None:
            record_failure(artifact, "the compiler wrote no artifact")
            return f"{artifact} failed"
        size = store_compiled(scratch, compiled.artifact_sha256)
    record_compiled(artifact, compiled, size, time.monotonic() - started)
    return f"{artifact} ready"


@contextmanager
def _component_file(version: PluginVersion) -> Iterator[Path]:
    """The version's raw component in a scratch file (the database keeps it compressed)."""
    with tempfile.TemporaryDirectory(prefix="component-") as scratch:
        path = Path(scratch) / "component.wasm"
        with path.open("wb") as out:
            copy_raw(version.sha256, BlobKind.COMPONENT, out)
        yield path


@contextmanager
def _artifact_file(version: PluginVersion, device_class: DeviceClass | None) -> Iterator[Path]:
    """Where the compiler writes: a scratch file, or with ``COMPILED_CACHE_DIR`` (development
    and tests) a file there named as a device's compiled cache names it, kept and reused:
    an artifact already there is only loaded, so the same bytes are compiled once."""
    cache = settings.COMPILED_CACHE_DIR
    if cache is not None and device_class is not None:
        key = device_class.engine_key or record_engine_key(device_class)
        cache.mkdir(parents=True, exist_ok=True)
        yield cache / f"{version.sha256}-{key[:16]}.cwasm"
        return
    path = scratch_dir() / f"{SCRATCH_PREFIX}{uuid.uuid4().hex}.cwasm"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
