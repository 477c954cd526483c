"""Naming a rollout's target on the command line: ``all``, ``tag:<name>``, ``device:<a,b,…>``."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from control_plane.devices.models import Device, Tag
from control_plane.devices.selectors import find_device
from control_plane.rollouts.choices import RolloutTarget


@dataclass(frozen=True)
class Target:
    kind: RolloutTarget
    tag: Tag | None = None
    devices: list[Device] = field(default_factory=list)


def parse_target(text: str) -> Target:
    """``all``, ``tag:<tag>`` or ``device:<name or id>[,<name or id>…]``; ValidationError
    otherwise."""
    kind, _, name = text.partition(":")
    if text == "all":
        return Target(RolloutTarget.ALL)
    if kind == "tag" and name:
        tag = Tag.objects.filter(name=name).first()
        if tag is None:
            raise ValidationError(f"no tag {name!r}")
        return Target(RolloutTarget.TAG, tag=tag)
    if kind in ("device", "devices") and name:
        return Target(RolloutTarget.DEVICES, devices=[find_device(n) for n in name.split(",")])
    raise ValidationError(
        f"{text!r}: name a target as all, tag:<tag> or device:<name or id>[,<name or id>…]"
    )
