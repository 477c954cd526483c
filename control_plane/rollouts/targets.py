"""Naming an assignment's target on the command line: ``all``, ``tag:<name>``, ``device:<name>``."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from control_plane.devices.models import Device, Tag
from control_plane.devices.selectors import find_device
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
        return Target(AssignmentTarget.DEVICE, device=find_device(name))
    raise ValidationError(f"{text!r}: name a target as all, tag:<tag> or device:<name or id>")
