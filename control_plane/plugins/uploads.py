"""Reading an upload: a component plus its manifest.toml, or one zip bundle holding both."""

from __future__ import annotations

import io
import tomllib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError

from fleet_common.components import MAX_COMPONENT_BYTES
from fleet_common.errors import ManifestError
from fleet_common.manifest import Manifest, parse_manifest

MAX_MANIFEST_BYTES = 64 * 1024
MANIFEST_NAME = "manifest.toml"


@dataclass(frozen=True)
class Upload:
    """A parsed manifest and the raw component bytes it describes."""

    manifest: Manifest
    component: bytes


def read_upload(
    *, component: bytes | None, manifest_text: str | None, bundle: bytes | None
) -> Upload:
    """Checks the shape of an upload; raises ValidationError keyed by the offending field."""
    if bundle is not None:
        if component is not None or manifest_text is not None:
            raise ValidationError(
                {"bundle": "upload either a bundle or a component with its manifest, not both"}
            )
        return _read_bundle(bundle)
    if component is None or manifest_text is None:
        raise ValidationError(
            {"component": "upload the component and its manifest.toml (or one zip bundle)"}
        )
    if len(component) > MAX_COMPONENT_BYTES:
        raise ValidationError({"component": _too_large(len(component))})
    return Upload(_parse_manifest(manifest_text, MANIFEST_NAME, "manifest"), component)


def _parse_manifest(text: str, source: str, field: str) -> Manifest:
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise ValidationError({field: f"{source} is larger than {MAX_MANIFEST_BYTES} bytes"})
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError({field: f"{source} is not valid TOML: {exc}"}) from None
    try:
        return parse_manifest(data, source=source)
    except ManifestError as exc:
        raise ValidationError({field: str(exc)}) from None


def _read_bundle(bundle: bytes) -> Upload:
    try:
        archive = zipfile.ZipFile(io.BytesIO(bundle))
    except zipfile.BadZipFile as exc:
        raise ValidationError({"bundle": f"the bundle is not a zip archive ({exc})"}) from None
    with archive:
        manifest_entry = _find_manifest(archive)
        folder = PurePosixPath(manifest_entry.filename).parent
        text = _read_entry(archive, manifest_entry, MAX_MANIFEST_BYTES)
        try:
            manifest_text = text.decode()
        except UnicodeDecodeError:
            raise ValidationError({"bundle": f"{manifest_entry.filename} is not UTF-8"}) from None
        manifest = _parse_manifest(manifest_text, f"bundle {manifest_entry.filename}", "bundle")
        component_name = str(folder / manifest.component) if folder.parts else manifest.component
        try:
            component_entry = archive.getinfo(component_name)
        except KeyError:
            raise ValidationError(
                {"bundle": f"the bundle has no {component_name}, the component its manifest names"}
            ) from None
        return Upload(manifest, _read_entry(archive, component_entry, MAX_COMPONENT_BYTES))


def _find_manifest(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    """``manifest.toml`` at the top, or inside the bundle's one top-level folder."""
    candidates = [
        info
        for info in archive.infolist()
        if PurePosixPath(info.filename).name == MANIFEST_NAME
        and len(PurePosixPath(info.filename).parts) <= 2
        and not info.is_dir()
    ]
    if len(candidates) != 1:
        found = "none" if not candidates else ", ".join(c.filename for c in candidates)
        raise ValidationError(
            {"bundle": f"the bundle must hold exactly one {MANIFEST_NAME} (found {found})"}
        )
    return candidates[0]


def _read_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int) -> bytes:
    if entry.file_size > limit:
        raise ValidationError({"bundle": f"{entry.filename}: {_too_large(entry.file_size)}"})
    try:
        with archive.open(entry) as handle:
            data = handle.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError, RuntimeError) as exc:
        raise ValidationError({"bundle": f"cannot read {entry.filename}: {exc}"}) from None
    if len(data) > limit:
        raise ValidationError({"bundle": f"{entry.filename}: {_too_large(len(data))}"})
    return data


def _too_large(size: int) -> str:
    return f"{size} bytes is larger than the {MAX_COMPONENT_BYTES // (1024 * 1024)} MiB limit"
