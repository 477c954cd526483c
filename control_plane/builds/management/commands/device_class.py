"""``manage.py device_class [NAME --enable|--disable]``: list the classes, or switch one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.builds.models import DeviceClass


class Command(BaseCommand):
    help = (
        "Lists the device classes the control plane compiles for, or enables or disables one "
        "(a control plane without qemu-user cannot compile for aarch64)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="the class to change")
        switch = parser.add_mutually_exclusive_group()
        switch.add_argument("--enable", action="store_true")
        switch.add_argument("--disable", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if name is not None:
            if not (options["enable"] or options["disable"]):
                raise CommandError("say --enable or --disable")
            changed = DeviceClass.objects.filter(name=name).update(enabled=options["enable"])
            if not changed:
                known = ", ".join(DeviceClass.objects.values_list("name", flat=True))
                raise CommandError(f"no device class {name!r} (known: {known})")
        for device_class in DeviceClass.objects.all():
            state = "enabled" if device_class.enabled else "disabled"
            features = ",".join(device_class.features) or "baseline"
            key = device_class.engine_key[:16] or "not compiled yet"
            self.stdout.write(
                f"{device_class.name}\t{state}\t{device_class.target}\t{features}\t{key}"
            )
