"""``manage.py uninstall_plugin <plugin> <all|tag:X|device:Y[,Z]>``: the explicit removal."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.errors import error_messages
from control_plane.plugins.models import Plugin
from control_plane.rollouts.services import target_devices_of, uninstall_plugin
from control_plane.rollouts.targets import parse_target


class Command(BaseCommand):
    help = "Removes a plugin from all devices, a tag's devices, or listed devices."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plugin")
        parser.add_argument("target", help="all, tag:<tag> or device:<name or id>[,…]")

    def handle(self, *args: Any, **options: Any) -> None:
        plugin = Plugin.objects.filter(name=options["plugin"]).first()
        if plugin is None:
            raise CommandError(f"no plugin {options['plugin']!r}")
        try:
            target = parse_target(options["target"])
            count = uninstall_plugin(plugin=plugin, devices=target_devices_of(target))
        except ValidationError as exc:
            raise CommandError("; ".join(error_messages(exc))) from None
        self.stdout.write(f"uninstalled {plugin} from {count} devices")
