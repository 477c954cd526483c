"""Signed statements: what the control plane promises and devices verify.

The formats are described in docs/delivery-protocol.md.

A statement travels as the exact string that was signed, so verification never depends on
re-serialising JSON the same way twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device_host.errors import DeviceHostError, ManifestError
from device_host.manifest import Manifest, parse_manifest

RELEASE_TYPE = "pi-fleet/release@1"
DESIRED_STATE_TYPE = "pi-fleet/desired-state@1"


class StatementError(DeviceHostError):
    """A statement is malformed, unsigned by a trusted key, or not what was expected."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_public_key(public_key: Ed25519PublicKey) -> str:
    """The one-line text form of a trusted key file: the raw key, base64."""
    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def decode_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise StatementError(f"not an Ed25519 public key: {exc}") from None


def sign(statement: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, str]:
    """Serialises ``statement`` canonically and wraps it in a signed envelope."""
    text = json.dumps(statement, sort_keys=True, separators=(",", ":"))
    signature = private_key.sign(text.encode())
    return {
        "statement": text,
        "key_id": key_id(private_key.public_key()),
        "signature": base64.b64encode(signature).decode(),
    }


def verify(
    envelope: object, trusted: Mapping[str, Ed25519PublicKey], expected_type: str
) -> dict[str, Any]:
    """Checks the envelope's signature against the trusted keys, then parses its statement."""
    if not isinstance(envelope, dict) or not all(
        isinstance(envelope.get(k), str) for k in ("statement", "key_id", "signature")
    ):
        raise StatementError("not a signed envelope (statement, key_id, signature)")
    public_key = trusted.get(envelope["key_id"])
    if public_key is None:
        raise StatementError(f"signed with untrusted key {envelope['key_id']}")
    try:
        signature = base64.b64decode(envelope["signature"], validate=True)
        public_key.verify(signature, envelope["statement"].encode())
    except (InvalidSignature, binascii.Error, ValueError):
        raise StatementError(f"bad signature (key {envelope['key_id']})") from None
    statement = json.loads(envelope["statement"])
    if not isinstance(statement, dict) or statement.get("type") != expected_type:
        raise StatementError(f"expected a {expected_type} statement")
    return statement


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Release:
    """A verified release statement: what to run, under which manifest, from which bytes."""

    plugin: str
    version: str
    serial: int
    manifest: Manifest
    sha256: str
    size: int
    issued_at: str
    envelope: dict[str, str]

    @classmethod
    def from_envelope(cls, envelope: object, trusted: Mapping[str, Ed25519PublicKey]) -> Release:
        statement = verify(envelope, trusted, RELEASE_TYPE)
        try:
            manifest = parse_manifest(statement["manifest"], source="signed manifest")
            artifact = statement["artifact"]
            release = cls(
                plugin=str(statement["plugin"]),
                version=str(statement["version"]),
                serial=int(statement["serial"]),
                manifest=manifest,
                sha256=str(artifact["sha256"]),
                size=int(artifact["size"]),
                issued_at=str(statement["issued_at"]),
                envelope=dict(envelope),  # type: ignore[call-overload]
            )
        except (KeyError, TypeError, ValueError, ManifestError) as exc:
            raise StatementError(f"malformed release statement: {exc}") from None
        if (manifest.name, manifest.version) != (release.plugin, release.version):
            raise StatementError("release names a different plugin or version than its manifest")
        if len(release.sha256) != 64 or release.size <= 0:
            raise StatementError("release has no valid artifact digest and size")
        return release


def release_statement(
    manifest_data: Mapping[str, Any], serial: int, sha256: str, size: int
) -> dict[str, Any]:
    """The statement the control plane signs when a version is approved."""
    return {
        "type": RELEASE_TYPE,
        "plugin": manifest_data["name"],
        "version": manifest_data["version"],
        "serial": serial,
        "manifest": dict(manifest_data),
        "artifact": {"sha256": sha256, "size": size},
        "issued_at": now_iso(),
    }


def desired_state_statement(
    device_id: str, sequence: int, releases: list[dict[str, str]]
) -> dict[str, Any]:
    """The statement pushed to (and returned in heartbeats of) one device."""
    return {
        "type": DESIRED_STATE_TYPE,
        "device_id": device_id,
        "sequence": sequence,
        "releases": releases,
        "issued_at": now_iso(),
    }
