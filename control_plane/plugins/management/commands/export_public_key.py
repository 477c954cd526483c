"""``manage.py export_public_key``: the line for a device's ``trusted-keys/<key id>.pub``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from control_plane.signing import SigningKeyError, public_key_text, signing_key_id


class Command(BaseCommand):
    help = "Prints the fleet public key (base64, one line) for devices' trusted-keys directory."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            text, key_id = public_key_text(), signing_key_id()
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"key id {key_id}: save as <trusted-keys>/{key_id}.pub")
        self.stdout.write(text)
