"""Signed statements: only the exact bytes a trusted key signed are believed."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_common.manifest import parse_manifest
from fleet_common.wire.statements import (
    DESIRED_STATE_TYPE,
    RELEASE_TYPE,
    Release,
    StatementError,
    decode_public_key,
    encode_public_key,
    key_id,
    release_statement,
    sign,
    verify,
)

MANIFEST = parse_manifest(
    {"name": "dashboard", "version": "1.2.0", "world": "dashboard", "capabilities": {"dht22": [4]}}
)


@pytest.fixture
def fleet_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trusted(fleet_key):
    return {key_id(fleet_key.public_key()): fleet_key.public_key()}


def _release_envelope(key: Ed25519PrivateKey, **changes: object) -> dict[str, str]:
    statement = {**release_statement(MANIFEST.to_data(), 3, "ab" * 32, 1234), **changes}
    return sign(statement, key)


def test_a_signed_release_verifies_and_carries_its_manifest(fleet_key, trusted):
    release = Release.from_envelope(_release_envelope(fleet_key), trusted)

    assert (release.plugin, release.version, release.serial) == ("dashboard", "1.2.0", 3)
    assert release.manifest == MANIFEST
    assert (release.sha256, release.size) == ("ab" * 32, 1234)


def test_a_tampered_statement_fails_its_signature(fleet_key, trusted):
    envelope = _release_envelope(fleet_key)
    envelope["statement"] = envelope["statement"].replace('"serial":3', '"serial":4')

    with pytest.raises(StatementError, match="bad signature"):
        Release.from_envelope(envelope, trusted)


def test_a_release_signed_by_an_unknown_key_is_refused(trusted):
    stranger = Ed25519PrivateKey.generate()

    with pytest.raises(StatementError, match="untrusted key"):
        Release.from_envelope(_release_envelope(stranger), trusted)


def test_a_key_id_copied_onto_another_signature_is_refused(fleet_key, trusted):
    forged = _release_envelope(Ed25519PrivateKey.generate())
    forged["key_id"] = key_id(fleet_key.public_key())

    with pytest.raises(StatementError, match="bad signature"):
        Release.from_envelope(forged, trusted)


def test_several_keys_can_be_trusted_at_once_for_rotation(fleet_key, trusted):
    new_key = Ed25519PrivateKey.generate()
    both = {**trusted, key_id(new_key.public_key()): new_key.public_key()}

    assert Release.from_envelope(_release_envelope(fleet_key), both).serial == 3
    assert Release.from_envelope(_release_envelope(new_key), both).serial == 3


def test_a_statement_of_another_type_is_refused(fleet_key, trusted):
    envelope = sign({"type": DESIRED_STATE_TYPE, "releases": []}, fleet_key)

    with pytest.raises(StatementError, match=f"expected a {RELEASE_TYPE} statement"):
        verify(envelope, trusted, RELEASE_TYPE)


def test_a_release_whose_manifest_names_another_plugin_is_refused(fleet_key, trusted):
    envelope = _release_envelope(fleet_key, plugin="thermostat")

    with pytest.raises(StatementError, match="different plugin or version"):
        Release.from_envelope(envelope, trusted)


def test_a_release_granting_an_impossible_pin_is_refused(fleet_key, trusted):
    manifest = {**MANIFEST.to_data(), "capabilities": {"dht22": [99]}}

    with pytest.raises(StatementError, match="pins \\[99\\] are not BCM GPIO pins"):
        Release.from_envelope(_release_envelope(fleet_key, manifest=manifest), trusted)


def test_public_keys_round_trip_through_their_text_form(fleet_key):
    text = encode_public_key(fleet_key.public_key())

    assert key_id(decode_public_key(text)) == key_id(fleet_key.public_key())
    with pytest.raises(StatementError):
        decode_public_key("not a key")


def test_the_signed_text_is_canonical_json(fleet_key):
    envelope = _release_envelope(fleet_key)

    statement = json.loads(envelope["statement"])
    assert envelope["statement"] == json.dumps(statement, sort_keys=True, separators=(",", ":"))
