"""Components this device accepted, stored by content hash after a bounded, verified download."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
from pathlib import Path

import zstandard

from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError
from device_host.delivery.statements import Release
from device_host.errors import DeviceHostError
from device_host.storage.digest import file_sha256

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

        The download stops as soon as it exceeds the signed size, so a hostile or broken
        server cannot fill the disk; then size and SHA-256 must match the signature.
        Raises DownloadFailed.
        """
        path = self.path_for(release.sha256)
        if path.exists() and file_sha256(path) == release.sha256:
            return path
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=self._directory)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, client.artifact(release.sha256) as response:
                reader = zstandard.ZstdDecompressor().stream_reader(response)
                while chunk := reader.read(CHUNK):
                    size += len(chunk)
                    if size > release.size:
                        raise DownloadFailed(
                            f"artifact is larger than the signed {release.size} bytes"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size != release.size:
                raise DownloadFailed(
                    f"artifact has {size} bytes, the release signed {release.size}"
                )
            if digest.hexdigest() != release.sha256:
                raise DownloadFailed("artifact does not match the signed SHA-256 (tampered?)")
            os.replace(tmp, path)
        except zstandard.ZstdError as exc:
            raise DownloadFailed(f"artifact is not valid zstd data: {exc}") from None
        except ControlPlaneError as exc:
            raise DownloadFailed(str(exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadFailed(f"download broke off: {exc!r}") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return path

    def prune(self, keep: set[str]) -> None:
        for path in self._directory.glob("*.wasm"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)
