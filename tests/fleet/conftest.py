"""A local fleet as a real one runs: the control plane behind nginx with TLS, the broker for
notices, and two device host processes that pin the fleet's CA; all over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.stack import SecureControlPlane
from tests.support import CHROMIUM_FLAGS, ControlPlaneProcess, HostProcess


@dataclass
class Fleet:
    control_plane: SecureControlPlane
    devices: list[HostProcess]


def signed_host(
    workdir, control_plane: ControlPlaneProcess, token: str, name: str, compile_locally: bool
) -> HostProcess:  # type: ignore[no-untyped-def]
    """A device with its own compiled cache: what it runs must arrive compiled and signed,
    unless it may compile for itself when it does not."""
    host = HostProcess(workdir=workdir, compiled_dir=workdir / "compiled")
    pinned = (
        {"ca_file": str(control_plane.ca_bundle)}
        if isinstance(control_plane, SecureControlPlane)
        else {}
    )
    host.settings = {
        "plugins": {"source": "signed"},
        "agent": {
            "control_plane_url": control_plane.url,
            "enrollment_token": token,
            "device_name": name,
            "trusted_keys_dir": str(control_plane.trusted_keys_dir),
            "heartbeat_interval_s": 1.0,
            "compile_locally": compile_locally,
            **pinned,
        },
    }
    return host


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, compiled_dir) -> Iterator[Fleet]:
    control_plane = SecureControlPlane(
        tmp_path_factory.mktemp("control-plane"), compiled_dir=compiled_dir
    )
    control_plane.set_up()
    control_plane.start()
    token = control_plane.enrollment_token(uses=2)
    devices = [
        signed_host(tmp_path_factory.mktemp(name), control_plane, token, name, compile_locally)
        for name, compile_locally in (("pi-kitchen", True), ("pi-greenhouse", False))
    ]
    try:
        for device in devices:
            device.start()
        yield Fleet(control_plane, devices)
    finally:
        for device in devices:
            device.stop()
        control_plane.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system's Chromium under Playwright, one per test module."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[flag for flag in CHROMIUM_FLAGS if flag != "--headless"],
        )
        yield browser
        browser.close()
