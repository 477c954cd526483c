"""``manage.py assign_release <plugin> <version> <all|tag:X|device:Y>``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.errors import error_messages
from control_plane.plugins.models import PluginVersion
from control_plane.plugins.signing import SigningKeyError
from control_plane.rollouts.services import create_assignment
from control_plane.rollouts.targets import parse_target


class Command(BaseCommand):
    help = "Assigns an approved plugin version to all devices, a tag, or one device."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plugin")
        parser.add_argument("version")
        parser.add_argument("target", help="all, tag:<tag> or device:<device name or id>")

    def handle(self, *args: Any, **options: Any) -> None:
        version = (
            PluginVersion.objects.select_related("plugin")
            .filter(plugin__name=options["plugin"], version=options["version"])
            .first()
        )
        if version is None:
            raise CommandError(f"no uploaded version {options['plugin']} {options['version']}")
        try:
            target = parse_target(options["target"])
            assignment = create_assignment(
                plugin_version=version, target=target.kind, tag=target.tag, device=target.device
            )
        except ValidationError as exc:
            raise CommandError("; ".join(error_messages(exc))) from None
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"assigned {assignment}")
