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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleet_common.errors import FleetError, ManifestError
from fleet_common.footprint import Footprint, FootprintError
from fleet_common.manifest import Manifest, parse_manifest

RELEASE_TYPE = "pi-fleet/release@1"
COMPILED_TYPE = "pi-fleet/compiled@1"
DESIRED_STATE_TYPE = "pi-fleet/desired-state@1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_COMPILED_BYTES = 256 << 20
"""The largest compiled artifact a device accepts (the dashboard's is 34 MB)."""


class StatementError(FleetError):
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
        if not _HEX64.fullmatch(release.sha256) or release.size <= 0:
            raise StatementError("release has no valid artifact digest and size")
        return release


@dataclass(frozen=True)
class CompiledArtifact:
    """A verified compiled statement: machine code for one release and one engine key.

    A device deserializes only bytes such a statement covers: loading an artifact is
    loading native code outside the sandbox, so its signature is the only thing that
    stands between the network and the device's CPU.
    """

    plugin: str
    version: str
    serial: int
    component_sha256: str
    component_size: int
    engine_key: str
    target: str
    features: tuple[str, ...]
    sha256: str
    size: int
    footprint: Footprint
    issued_at: str

    @classmethod
    def from_envelope(
        cls, envelope: object, trusted: Mapping[str, Ed25519PublicKey]
    ) -> CompiledArtifact:
        statement = verify(envelope, trusted, COMPILED_TYPE)
        try:
            component, artifact = statement["component"], statement["artifact"]
            compiled = cls(
                plugin=str(statement["plugin"]),
                version=str(statement["version"]),
                serial=int(statement["serial"]),
                component_sha256=str(component["sha256"]),
                component_size=int(component["size"]),
                engine_key=str(statement["engine"]["key"]),
                target=str(statement["engine"]["target"]),
                features=_features(statement["engine"]["features"]),
                sha256=str(artifact["sha256"]),
                size=int(artifact["size"]),
                footprint=Footprint.from_json(component["footprint"]),
                issued_at=str(statement["issued_at"]),
            )
        except (KeyError, TypeError, ValueError, FootprintError) as exc:
            raise StatementError(f"malformed compiled statement: {exc}") from None
        for digest in (compiled.component_sha256, compiled.engine_key, compiled.sha256):
            if not _HEX64.fullmatch(digest):
                raise StatementError("compiled statement has a digest that is not SHA-256")
        if not 0 < compiled.size <= MAX_COMPILED_BYTES:
            raise StatementError(
                f"compiled artifact of {compiled.size} bytes is outside 1..{MAX_COMPILED_BYTES}"
            )
        return compiled

    def problem_for(self, release: Release, engine_key: str) -> str | None:
        """Why this artifact is not the machine code of ``release`` for ``engine_key``.

        Machine code is bound to the bytes it was compiled from, not to a release's serial:
        a rollback is a new serial for old code, and it runs the same signed artifact.
        """
        if (self.plugin, self.version) != (release.plugin, release.version):
            return (
                f"it was compiled for {self.plugin} {self.version}, "
                f"not {release.plugin} {release.version}"
            )
        if (self.component_sha256, self.component_size) != (release.sha256, release.size):
            return "it was compiled from other bytes than the release signs"
        if self.engine_key != engine_key:
            return (
                f"it was compiled for engine key {self.engine_key[:16]}, "
                f"this device's is {engine_key[:16]}"
            )
        return None


@dataclass(frozen=True)
class DesiredState:
    """A verified desired state for one device: releases to run, compiled code for them.

    Entries stay signed envelopes: each is verified on its own, so one bad release is
    refused while the others install.
    """

    device_id: str
    sequence: int
    releases: list[object]
    compiled: list[object]
    issued_at: str

    @classmethod
    def from_envelope(
        cls, envelope: object, trusted: Mapping[str, Ed25519PublicKey], device_id: str
    ) -> DesiredState:
        statement = verify(envelope, trusted, DESIRED_STATE_TYPE)
        if statement.get("device_id") != device_id:
            raise StatementError("desired state is addressed to another device")
        sequence = statement.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise StatementError("desired state has no sequence number")
        releases, compiled = statement.get("releases"), statement.get("compiled", [])
        if not isinstance(releases, list):
            raise StatementError("desired state has no list of releases")
        if not isinstance(compiled, list):
            raise StatementError("desired state's compiled artifacts are not a list")
        return cls(device_id, sequence, releases, compiled, str(statement.get("issued_at", "")))


def _features(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
        raise ValueError("engine features must be a list of strings")
    return tuple(value)


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


def compiled_statement(
    release: Mapping[str, Any],
    engine: Mapping[str, Any],
    artifact_sha256: str,
    artifact_size: int,
    footprint: Footprint,
) -> dict[str, Any]:
    """The statement the control plane signs for one release's artifact for one engine key.

    ``release`` is the signed release statement; ``engine`` is ``{"key", "target",
    "features"}`` of the class it was compiled for.
    """
    return {
        "type": COMPILED_TYPE,
        "plugin": release["plugin"],
        "version": release["version"],
        "serial": release["serial"],
        "component": {
            "sha256": release["artifact"]["sha256"],
            "size": release["artifact"]["size"],
            "footprint": footprint.to_json(),
        },
        "engine": {
            "key": engine["key"],
            "target": engine["target"],
            "features": list(engine["features"]),
        },
        "artifact": {"sha256": artifact_sha256, "size": artifact_size},
        "issued_at": now_iso(),
    }


def desired_state_statement(
    device_id: str,
    sequence: int,
    releases: list[dict[str, str]],
    compiled: list[dict[str, str]],
) -> dict[str, Any]:
    """The statement pushed to (and returned in heartbeats of) one device.

    ``compiled`` holds the signed artifacts of its releases for the device's engine key.
    """
    return {
        "type": DESIRED_STATE_TYPE,
        "device_id": device_id,
        "sequence": sequence,
        "releases": releases,
        "compiled": compiled,
        "issued_at": now_iso(),
    }
