"""How rollouts reacts to what the other apps announce (connected in `RolloutsConfig.ready`).

devices, plugins and builds never import rollouts: they send signals, and here the
fleet's desired states follow.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from control_plane.builds.signals import artifacts_signed
from control_plane.devices.models import Device
from control_plane.devices.signals import (
    device_ahead,
    device_enrolled,
    device_retagged,
    engine_changed,
    heartbeat_recorded,
)
from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.desired import (
    apply_standing_assignments,
    mark_stale,
    refresh_desired_states,
)
from control_plane.rollouts.models import DeviceRelease
from control_plane.rollouts.services import request_evaluation


def on_enrolled(sender: Any, device: Device, **kwargs: Any) -> None:
    """A new device gets the standing assignments in the enrollment's own answer."""
    apply_standing_assignments(device)
    refresh_desired_states(devices=[device])


def on_retagged(sender: Any, device: Device, **kwargs: Any) -> None:
    apply_standing_assignments(device)
    refresh_desired_states(devices=[device])


def on_engine_changed(sender: Any, device: Device, **kwargs: Any) -> None:
    refresh_desired_states(devices=[device])


def on_ahead(sender: Any, device: Device, **kwargs: Any) -> None:
    """Its envelope was cleared and its sequence raised: signing again gives one above."""
    refresh_desired_states(devices=[device])


def on_heartbeat(sender: Any, device_id: Any, **kwargs: Any) -> None:
    request_evaluation(device_id=device_id)


def on_artifacts_signed(sender: Any, version: PluginVersion, **kwargs: Any) -> None:
    """Devices that should run ``version`` can now get its machine code: possibly the whole
    fleet, so the worker rebuilds their desired states in chunks."""
    ids = DeviceRelease.objects.filter(release__version=version).values_list("device_id", flat=True)
    with transaction.atomic():
        mark_stale(list(ids))


def connect() -> None:
    device_enrolled.connect(on_enrolled, dispatch_uid="rollouts.enrolled")
    device_retagged.connect(on_retagged, dispatch_uid="rollouts.retagged")
    device_ahead.connect(on_ahead, dispatch_uid="rollouts.ahead")
    engine_changed.connect(on_engine_changed, dispatch_uid="rollouts.engine")
    heartbeat_recorded.connect(on_heartbeat, dispatch_uid="rollouts.heartbeat")
    artifacts_signed.connect(on_artifacts_signed, dispatch_uid="rollouts.artifacts")
