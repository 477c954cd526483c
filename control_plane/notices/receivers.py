"""What notices does when a device goes (connected in `NoticesConfig.ready`)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete

from control_plane.devices.models import Device
from control_plane.notices.services import retire_topic


def on_device_deleted(sender: type[Device], instance: Device, **_: Any) -> None:
    retire_topic(instance.pk)


def connect() -> None:
    post_delete.connect(on_device_deleted, sender=Device, dispatch_uid="notices.device_deleted")
