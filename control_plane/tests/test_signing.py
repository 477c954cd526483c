"""The fleet signing key: made once with mode 0600, exported as a device's trusted key."""

from __future__ import annotations

import stat

import pytest
from django.core.management import CommandError, call_command

from control_plane.signing import SigningKeyError, create_signing_key, load_signing_key
from fleet_common.wire.statements import decode_public_key, key_id


@pytest.fixture
def key_path(settings, tmp_path):
    settings.SIGNING_KEY_PATH = tmp_path / "keys" / "fleet.pem"
    return settings.SIGNING_KEY_PATH


def test_the_command_writes_a_private_key_only_its_owner_reads(key_path, capsys):
    call_command("create_signing_key")

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    public = decode_public_key(out.split("public key: ")[1].strip())
    assert f"key id: {key_id(public)}" in out
    assert key_id(load_signing_key().public_key()) == key_id(public)


def test_an_existing_key_is_not_replaced_without_force(key_path):
    call_command("create_signing_key")
    before = key_path.read_bytes()

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_signing_key")

    assert key_path.read_bytes() == before


def test_force_replaces_the_key_and_signing_follows(key_path):
    first = key_id(create_signing_key(key_path).public_key())

    second = key_id(create_signing_key(key_path, force=True).public_key())

    assert first != second
    assert key_id(load_signing_key().public_key()) == second
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_the_exported_line_is_what_a_device_trusts(key_path, capsys):
    key = create_signing_key(key_path)

    call_command("export_public_key")

    line = capsys.readouterr().out.strip()
    assert key_id(decode_public_key(line)) == key_id(key.public_key())


def test_exporting_without_a_key_says_how_to_make_one(key_path):
    with pytest.raises(CommandError, match=r"run: manage\.py create_signing_key"):
        call_command("export_public_key")


def test_a_file_that_is_not_a_key_is_refused(key_path):
    key_path.parent.mkdir(parents=True)
    key_path.write_text("not a key")

    with pytest.raises(SigningKeyError, match="cannot read the signing key"):
        load_signing_key()
