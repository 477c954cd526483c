"""``manage.py device_maintenance <device> start|finish <note>``: for upgrade tooling."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.devices.selectors import find_device
from control_plane.devices.services import clear_maintenance, set_maintenance
from control_plane.errors import error_messages


class Command(BaseCommand):
    help = (
        "Marks a device as under maintenance (its downtime is expected) or ends that, "
        "recording the note as a device event. The rolling upgrade playbook calls it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("device", help="device name or id")
        parser.add_argument("action", choices=["start", "finish"])
        parser.add_argument("note", help="what is being done, or how it went")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            device = find_device(options["device"])
        except ValidationError as exc:
            raise CommandError("; ".join(error_messages(exc))) from None
        if options["action"] == "start":
            set_maintenance(device, options["note"])
            self.stdout.write(f"{device}: maintenance started: {options['note']}")
        else:
            clear_maintenance(device, options["note"])
            self.stdout.write(f"{device}: maintenance finished: {options['note']}")
