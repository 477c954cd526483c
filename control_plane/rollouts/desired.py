"""Each device's signed desired state, rebuilt from its releases; standing assignments.

A device's desired state lists the `DeviceRelease` rows it has, each with its compiled
artifact for the device's engine key. It is re-signed only when that list changes, and a
changed device gets the next sequence number and, after the commit, a push.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import transaction

from control_plane.builds.selectors import artifacts_for, signed_artifacts
from control_plane.devices.models import Device
from control_plane.plugins.models import PluginVersion, Release
from control_plane.rollouts.choices import AssignmentTarget
from control_plane.rollouts.models import Assignment, DeviceRelease
from control_plane.rollouts.push import Push, push_desired_states
from control_plane.signing import load_signing_key, sign_desired_state

log = logging.getLogger(__name__)


@transaction.atomic
def refresh_desired_states(*, devices: Iterable[Device | UUID], push: bool = True) -> list[Device]:
    """Re-signs the desired state of each device (or device id) whose releases changed.

    Returns the changed devices; unless ``push`` is off, each is sent its new envelope in
    the background after the commit.
    """
    ids = [device.pk if isinstance(device, Device) else device for device in devices]
    if not ids:
        return []
    rows: dict[Any, list[DeviceRelease]] = {}
    for row in (
        DeviceRelease.objects.filter(device_id__in=ids)
        .select_related("release__version", "plugin")
        .order_by("plugin__name")
    ):
        rows.setdefault(row.device_id, []).append(row)
    signed = signed_artifacts({row.release.version_id for group in rows.values() for row in group})
    key = load_signing_key()
    changed = []
    for device in Device.objects.select_for_update().filter(pk__in=ids).order_by("pk"):
        mine = rows.get(device.pk, [])
        releases = [row.release.envelope for row in mine]
        compiled = artifacts_for(
            signed, [row.release.version_id for row in mine], device.engine_key
        )
        current = device.desired_statement
        if (
            current is not None
            and current["releases"] == releases
            and current.get("compiled", []) == compiled
        ):
            continue
        device.desired_sequence += 1
        envelope = sign_desired_state(
            str(device.pk), device.desired_sequence, releases, compiled, key
        )
        device.desired_envelope = json.dumps(envelope, separators=(",", ":"))
        device.desired_versions = {row.plugin.name: row.release.version.version for row in mine}
        running = {str(p.get("name")): p.get("version") for p in device.reported_plugins}
        device.drifting = any(running.get(n) != v for n, v in device.desired_versions.items())
        changed.append(device)
    Device.objects.bulk_update(
        changed,
        ["desired_sequence", "desired_envelope", "desired_versions", "drifting"],
        batch_size=500,
    )
    if changed:
        log.info("new desired state for %d device(s)", len(changed))
    if changed and push:
        pushes = [
            Push(device.name, device.agent_url, device.desired_envelope) for device in changed
        ]
        transaction.on_commit(lambda: push_desired_states(pushes))
    return changed


def latest_release(version: PluginVersion) -> Release:
    """The newest release of ``version``: what a device that should run it gets."""
    return Release.objects.filter(version=version).order_by("-serial")[0]


def covers(assignment: Assignment, device: Device, tag_ids: set[int]) -> bool:
    if assignment.target == AssignmentTarget.DEVICE:
        return assignment.device_id == device.pk
    if assignment.target == AssignmentTarget.TAG:
        return assignment.tag_id in tag_ids
    return True


@transaction.atomic
def apply_standing_assignments(device: Device) -> list[str]:
    """Gives ``device`` the assigned version of each plugin it has no release of yet.

    Returns the plugins it got. A plugin the device already has is left alone: standing
    rules bring devices that join up to date, they never move or remove a release.
    """
    have = set(DeviceRelease.objects.filter(device=device).values_list("plugin_id", flat=True))
    tag_ids = set(device.tags.values_list("pk", flat=True))
    chosen: dict[int, Assignment] = {}
    for rule in Assignment.objects.select_related("plugin_version__plugin"):
        plugin_id = rule.plugin_version.plugin_id
        if plugin_id in have or not covers(rule, device, tag_ids):
            continue
        current = chosen.get(plugin_id)
        if current is None or _rank(rule) > _rank(current):
            chosen[plugin_id] = rule
    for plugin_id, rule in chosen.items():
        DeviceRelease.objects.create(
            device=device, plugin_id=plugin_id, release=latest_release(rule.plugin_version)
        )
    return sorted(rule.plugin_version.plugin.name for rule in chosen.values())


def _rank(assignment: Assignment) -> tuple[int, object, int]:
    return assignment.specificity, assignment.created_at, assignment.pk
