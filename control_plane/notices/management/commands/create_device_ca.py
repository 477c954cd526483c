"""``manage.py create_device_ca [--force]``: the CA that issues devices' MQTT client
certificates; the broker trusts it (and only it) for clients."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.signing import DeviceCAError, create_device_ca


class Command(BaseCommand):
    help = "Creates the device CA at DEVICE_CA_CERT_PATH and DEVICE_CA_KEY_PATH (key mode 0600)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace an existing CA (every device's client certificate stops working)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            certificate = create_device_ca(force=options["force"])
        except DeviceCAError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"wrote {settings.DEVICE_CA_KEY_PATH} (mode 0600)")
        self.stdout.write(f"device CA certificate: {settings.DEVICE_CA_CERT_PATH}")
        self.stdout.write(f"valid until: {certificate.not_valid_after_utc:%Y-%m-%d}")
        self.stderr.write(
            "give the broker the certificate (not the key) as its cafile for client certificates"
        )
