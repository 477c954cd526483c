"""The one place that signs: the fleet's Ed25519 key and the statements it signs.

The key is a 0600 PEM file on this host, never in the database. Releases, compiled
artifacts and desired states are built by `fleet_common.wire.statements`, the same code
devices verify with, and signed here, so the two sides cannot drift apart and no other
module of the control plane touches the key.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from django.conf import settings

from control_plane.errors import ControlPlaneError
from fleet_common.footprint import Footprint
from fleet_common.wire.statements import (
    compiled_statement,
    desired_state_statement,
    encode_public_key,
    key_id,
    release_statement,
    sign,
)

log = logging.getLogger(__name__)


class SigningKeyError(ControlPlaneError):
    """The signing key is missing, unreadable, not Ed25519, or already exists."""


def signing_key_path() -> Path:
    return Path(settings.SIGNING_KEY_PATH)


def create_signing_key(path: Path | None = None, *, force: bool = False) -> Ed25519PrivateKey:
    """Generates a key and writes it with mode 0600; refuses to replace one unless ``force``."""
    path = path or signing_key_path()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = path.with_name(f".{path.name}.new") if force else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(
            f"{path} already exists; devices trust its public key "
            "(use --force to replace it, after trusting the new key fleet-wide)"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        if force:
            os.replace(target, path)
    finally:
        if force:
            target.unlink(missing_ok=True)
    _load.cache_clear()
    return key


def load_signing_key() -> Ed25519PrivateKey:
    """The current key; re-read when the file changes, so a rotation needs no restart."""
    path = signing_key_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SigningKeyError(
            f"no signing key at {path} (run: manage.py create_signing_key)"
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("signing key %s is readable by others (chmod 600 it)", path)
    return _load(str(path), info.st_mtime_ns, info.st_size)


@lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int, size: int) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def sign_release(
    manifest: Mapping[str, Any], serial: int, sha256: str, size: int
) -> dict[str, str]:
    """The signed release of a component under ``serial`` (a rollback is a new serial)."""
    return sign(release_statement(manifest, serial, sha256, size), load_signing_key())


def sign_compiled(
    release: Mapping[str, Any],
    engine: Mapping[str, Any],
    sha256: str,
    size: int,
    footprint: Footprint,
) -> dict[str, str]:
    """The signed statement that an artifact is ``release``'s machine code for ``engine``."""
    return sign(compiled_statement(release, engine, sha256, size, footprint), load_signing_key())


def sign_desired_state(
    device_id: str,
    sequence: int,
    releases: list[dict[str, str]],
    compiled: list[dict[str, str]],
    key: Ed25519PrivateKey | None = None,
) -> dict[str, str]:
    """One device's signed desired state; ``key`` lets a refresh of many devices read it once."""
    statement = desired_state_statement(device_id, sequence, releases, compiled)
    return sign(statement, key or load_signing_key())


def public_key_text(key: Ed25519PrivateKey | None = None) -> str:
    """The line to put in a device's trusted-keys directory (``<key id>.pub``)."""
    return encode_public_key((key or load_signing_key()).public_key())


def signing_key_id(key: Ed25519PrivateKey | None = None) -> str:
    return key_id((key or load_signing_key()).public_key())
