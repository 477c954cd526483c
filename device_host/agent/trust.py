"""The fleet public keys this device trusts: one ``*.pub`` file each, so keys can rotate."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet_common.wire.statements import StatementError, decode_public_key, key_id

log = logging.getLogger(__name__)


def load_trusted_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Reads every key file in ``directory``; an unreadable one is logged and skipped."""
    keys = {}
    for path in sorted(directory.glob("*.pub")):
        try:
            public_key = decode_public_key(path.read_text())
        except (OSError, StatementError) as exc:
            log.error("ignoring trusted key %s: %s", path, exc)
            continue
        keys[key_id(public_key)] = public_key
    if not keys:
        log.warning("no trusted keys in %s: every release will be refused", directory)
    return keys
