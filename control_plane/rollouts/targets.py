"""Naming an assignment's target on the command line: ``all``, ``tag:<name>``, ``device:<name>``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from control_plane.devices.models import Device, Tag
from control_plane.rollouts.choices import AssignmentTarget


@dataclass(frozen=True)
class Target:
    kind: AssignmentTarget
    tag: Tag | None = None
    device: Device | None = None


def parse_target(text: str) -> Target:
    """``all``, ``tag:<tag>`` or ``device:<device name or id>``; ValidationError otherwise."""
    kind, _, name = text.partition(":")
    if text == "all":
        return Target(AssignmentTarget.ALL)
    if kind == "tag" and name:
        tag = Tag.objects.filter(name=name).first()
        if tag is None:
            raise ValidationError(f"no tag {name!r}")
        return Target(AssignmentTarget.TAG, tag=tag)
    if kind == "device" and name:
        return Target(AssignmentTarget.DEVICE, device=_device(name))
    raise ValidationError(f"{text!r}: name a target as all, tag:<tag> or device:<name or id>")


def _device(name: str) -> Device:
    try:
        by_id = Device.objects.filter(pk=uuid.UUID(name)).first()
    except ValueError:
        by_id = None
    if by_id is not None:
        return by_id
    matches = list(Device.objects.filter(name=name)[:2])
    if not matches:
        raise ValidationError(f"no device named {name!r}")
    if len(matches) > 1:
        raise ValidationError(f"several devices are named {name!r}; use the device id")
    return matches[0]
