"""Which version of each plugin a device should run, from the assignments that cover it."""

from __future__ import annotations

from collections.abc import Iterable

from control_plane.devices.models import Device
from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.choices import AssignmentTarget
from control_plane.rollouts.models import Assignment


def covers(assignment: Assignment, device: Device, tag_ids: set[int]) -> bool:
    if assignment.target == AssignmentTarget.DEVICE:
        return assignment.device_id == device.pk
    if assignment.target == AssignmentTarget.TAG:
        return assignment.tag_id in tag_ids
    return True


def desired_versions(
    device: Device, assignments: Iterable[Assignment], tag_ids: set[int]
) -> dict[str, PluginVersion]:
    """Plugin name → version: the most specific covering assignment wins, then the newest.

    ``assignments`` must have ``plugin_version__plugin`` loaded.
    """
    chosen: dict[str, Assignment] = {}
    for assignment in assignments:
        if not covers(assignment, device, tag_ids):
            continue
        name = assignment.plugin_version.plugin.name
        current = chosen.get(name)
        if current is None or _rank(assignment) > _rank(current):
            chosen[name] = assignment
    return {name: chosen[name].plugin_version for name in sorted(chosen)}


def desired_versions_for(device: Device) -> dict[str, PluginVersion]:
    """`desired_versions` for one device, loading what it needs."""
    return desired_versions(
        device, all_assignments(), set(device.tags.values_list("pk", flat=True))
    )


def all_assignments() -> list[Assignment]:
    return list(Assignment.objects.select_related("plugin_version__plugin"))


def _rank(assignment: Assignment) -> tuple[int, object, int]:
    return assignment.specificity, assignment.created_at, assignment.pk
