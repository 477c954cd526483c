"""Signed bytes this device downloads: compiled artifacts, and components when it compiles.

Every download is bounded by the signed size and checked against the signed SHA-256 before
it is renamed into place."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

import zstandard

from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError
from device_host.errors import DeviceHostError
from fleet_common.digest import file_sha256
from fleet_common.wire.statements import CompiledArtifact, Release

CHUNK = 1 << 16


class DownloadFailed(DeviceHostError):
    """The bytes that arrived are not the ones the release signed, or did not arrive at all.

    Never a verdict on the release: a network error, a truncated or corrupted transfer, or
    a damaged file on the server heals, so the agent retries it later.
    """


class ArtifactStore:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self._directory / f"{sha256}.wasm"

    def fetch(self, release: Release, client: ControlPlaneClient) -> Path:
        """The verified component for ``release``, downloading it if it is not here yet.

        Only for a device that compiles for itself. Raises DownloadFailed.
        """
        path = self.path_for(release.sha256)
        if not (path.exists() and file_sha256(path) == release.sha256):
            with _opened(client.artifact, release.sha256) as response:
                download(response, release.sha256, release.size, path, "component")
        return path

    def prune(self, keep: set[str]) -> None:
        for path in self._directory.glob("*.wasm"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)


def fetch_compiled(compiled: CompiledArtifact, client: ControlPlaneClient, target: Path) -> None:
    """Puts the verified compiled artifact at ``target`` (the compiled cache's name for it).

    Bytes already there that match the signed SHA-256 are kept. Raises DownloadFailed.
    """
    if target.exists() and file_sha256(target) == compiled.sha256:
        return
    with _opened(client.compiled, compiled.sha256) as response:
        download(response, compiled.sha256, compiled.size, target, "compiled artifact")


def download(response: IO[bytes], sha256: str, size: int, target: Path, what: str) -> None:
    """Decompresses a zstd stream into ``target`` if it is exactly the signed bytes.

    The download stops as soon as it exceeds the signed size, so a hostile or broken
    server cannot fill the disk; then size and SHA-256 must match the signature. The file
    appears whole or not at all. Raises DownloadFailed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=target.parent)
    try:
        digest, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            reader = zstandard.ZstdDecompressor().stream_reader(response)
            while chunk := reader.read(CHUNK):
                received += len(chunk)
                if received > size:
                    raise DownloadFailed(f"{what} is larger than the signed {size} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if received != size:
            raise DownloadFailed(f"{what} has {received} bytes, the signature says {size}")
        if digest.hexdigest() != sha256:
            raise DownloadFailed(f"{what} does not match the signed SHA-256 (tampered?)")
        os.replace(tmp, target)
    except zstandard.ZstdError as exc:
        raise DownloadFailed(f"{what} is not valid zstd data: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadFailed(f"download broke off: {exc!r}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def _opened(
    opener: Callable[[str], AbstractContextManager[IO[bytes]]], sha256: str
) -> Iterator[IO[bytes]]:
    try:
        with opener(sha256) as response:
            yield response
    except ControlPlaneError as exc:
        raise DownloadFailed(str(exc)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadFailed(f"download broke off: {exc!r}") from None
