"""How rollouts reacts to what the other apps announce (connected in `RolloutsConfig.ready`).

devices, plugins and builds never import rollouts: they send signals, and here the
fleet's desired states follow.
"""

from __future__ import annotations

from typing import Any

from control_plane.builds.signals import artifacts_signed
from control_plane.devices.models import Device
from control_plane.devices.signals import (
    device_enrolled,
    device_retagged,
    engine_changed,
    heartbeat_recorded,
)
from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.desired import apply_standing_assignments, refresh_desired_states
from control_plane.rollouts.models import DeviceRelease
from control_plane.rollouts.services import request_evaluation


def on_enrolled(sender: Any, device: Device, **kwargs: Any) -> None:
    """A new device gets the standing assignments; no push, its agent awaits this answer."""
    apply_standing_assignments(device)
    refresh_desired_states(devices=[device], push=False)


def on_retagged(sender: Any, device: Device, **kwargs: Any) -> None:
    apply_standing_assignments(device)
    refresh_desired_states(devices=[device])


def on_engine_changed(sender: Any, device: Device, **kwargs: Any) -> None:
    refresh_desired_states(devices=[device], push=False)


def on_heartbeat(sender: Any, device_id: Any, **kwargs: Any) -> None:
    request_evaluation(device_id=device_id)


def on_artifacts_signed(sender: Any, version: PluginVersion, **kwargs: Any) -> None:
    """Devices that should run ``version`` can now get its machine code."""
    ids = DeviceRelease.objects.filter(release__version=version).values_list("device_id", flat=True)
    refresh_desired_states(devices=list(ids))


def connect() -> None:
    device_enrolled.connect(on_enrolled, dispatch_uid="rollouts.enrolled")
    device_retagged.connect(on_retagged, dispatch_uid="rollouts.retagged")
    engine_changed.connect(on_engine_changed, dispatch_uid="rollouts.engine")
    heartbeat_recorded.connect(on_heartbeat, dispatch_uid="rollouts.heartbeat")
    artifacts_signed.connect(on_artifacts_signed, dispatch_uid="rollouts.artifacts")
