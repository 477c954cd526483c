"""Every write to rollouts goes through here, and desired states are recomputed here."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from control_plane.builds.selectors import artifacts_for, signed_artifacts
from control_plane.devices.models import Device, Tag
from control_plane.plugins.models import Plugin, PluginVersion
from control_plane.plugins.signing import load_signing_key
from control_plane.rollouts.choices import AssignmentTarget
from control_plane.rollouts.desired import all_assignments, desired_versions
from control_plane.rollouts.models import Assignment
from control_plane.rollouts.push import Push, push_desired_states
from fleet_common.wire.statements import desired_state_statement, sign

log = logging.getLogger(__name__)


@transaction.atomic
def create_assignment(
    *,
    plugin_version: PluginVersion,
    target: str,
    tag: Tag | None = None,
    device: Device | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Assignment:
    """Assigns an approved version; covered devices get a new signed desired state."""
    assignment = Assignment(
        plugin_version=plugin_version,
        target=target,
        tag=tag,
        device=device,
        created_by=created_by,
    )
    assignment.full_clean()
    assignment.save()
    refresh_desired_states(devices=covered_devices(assignment))
    return assignment


@transaction.atomic
def delete_assignment(*, assignment: Assignment) -> None:
    """Removes an assignment; devices it covered fall back to the next one, or to nothing."""
    devices = list(covered_devices(assignment))
    assignment.delete()
    refresh_desired_states(devices=devices)


def covered_devices(assignment: Assignment) -> Iterable[Device]:
    if assignment.target == AssignmentTarget.DEVICE:
        return Device.objects.filter(pk=assignment.device_id)
    if assignment.target == AssignmentTarget.TAG:
        return Device.objects.filter(tags=assignment.tag_id)
    return Device.objects.all()


@transaction.atomic
def refresh_desired_states_for_plugin(*, plugin: Plugin) -> list[Device]:
    """Recomputes the devices that any assignment of ``plugin`` covers."""
    devices: dict[object, Device] = {}
    for assignment in Assignment.objects.filter(plugin_version__plugin=plugin):
        devices.update((d.pk, d) for d in covered_devices(assignment))
    return refresh_desired_states(devices=devices.values())


@transaction.atomic
def refresh_desired_states(*, devices: Iterable[Device], push: bool = True) -> list[Device]:
    """Recomputes and re-signs the desired state of each device whose releases changed.

    Each release travels with its signed compiled artifact for the device's engine key,
    when there is one. A changed device gets the next sequence number; after the commit,
    unless ``push`` is off, its agent is sent the new envelope in the background. Returns
    the changed devices.
    """
    ids = [device.pk for device in devices]
    if not ids:
        return []
    assignments = all_assignments()
    signed = signed_artifacts({a.plugin_version_id for a in assignments})
    key = load_signing_key()
    changed = []
    locked = (
        Device.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .prefetch_related("tags")
    )
    for device in locked:
        tag_ids = {tag.pk for tag in device.tags.all()}
        versions = desired_versions(device, assignments, tag_ids)
        releases = [version.release_envelope for version in versions.values()]
        compiled = artifacts_for(signed, [v.pk for v in versions.values()], device.engine_key)
        current = device.desired_statement
        if (
            current is not None
            and current["releases"] == releases
            and current.get("compiled", []) == compiled
        ):
            continue
        device.desired_sequence += 1
        statement = desired_state_statement(
            str(device.pk), device.desired_sequence, releases, compiled
        )
        device.desired_envelope = json.dumps(sign(statement, key), separators=(",", ":"))
        changed.append(device)
    Device.objects.bulk_update(changed, ["desired_sequence", "desired_envelope"], batch_size=500)
    if changed:
        log.info("new desired state for %d device(s)", len(changed))
    if changed and push:
        pushes = [
            Push(device.name, device.agent_url, device.desired_envelope) for device in changed
        ]
        transaction.on_commit(lambda: push_desired_states(pushes))
    return changed
