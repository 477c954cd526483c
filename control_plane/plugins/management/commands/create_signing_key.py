"""``manage.py create_signing_key [--force]``: the fleet's Ed25519 key, mode 0600."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.signing import (
    SigningKeyError,
    create_signing_key,
    public_key_text,
    signing_key_id,
    signing_key_path,
)


class Command(BaseCommand):
    help = "Creates the fleet signing key at SIGNING_KEY_PATH and prints its public key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace an existing key (devices must trust the new one first)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key = create_signing_key(force=options["force"])
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None
        key_id = signing_key_id(key)
        self.stderr.write(f"wrote {signing_key_path()} (mode 0600)")
        self.stdout.write(f"key id: {key_id}")
        self.stdout.write(f"public key: {public_key_text(key)}")
        self.stderr.write(
            f"devices trust it as {key_id}.pub in their trusted-keys directory "
            "(manage.py export_public_key prints just that line)"
        )
