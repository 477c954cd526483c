"""The control plane serves the device API exactly where fleet_common.wire.paths says."""

from __future__ import annotations

import pytest
from django.urls import resolve, reverse

from control_plane.builds.api import views as builds
from control_plane.devices.api import views as devices
from control_plane.plugins.api import views as plugins
from fleet_common.wire import paths

DIGEST = "ab" * 32


@pytest.mark.parametrize(
    ("path", "name", "view"),
    [
        (paths.ENROLL, "api:enroll", devices.enroll),
        (paths.HEARTBEAT, "api:heartbeat", devices.heartbeat),
        (paths.COMPONENT.format(sha256=DIGEST), "api:artifact", plugins.artifact),
        (paths.COMPILED.format(sha256=DIGEST), "api:compiled", builds.compiled),
    ],
)
def test_each_wire_path_is_routed_to_its_view(path, name, view):
    match = resolve(path)

    assert match.func is view
    assert reverse(name, kwargs=match.kwargs) == path
