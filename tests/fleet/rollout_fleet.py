"""A fleet of ten real device hosts behind one control plane, for the rollout tests.

Half the devices are tagged ``kitchen``, half ``greenhouse``; all run in signed mode with
their own compiled dirs, and all but one may not compile: they run what the control plane
compiled and signed. Queries go through ``manage.py`` (the operator's own commands, and a
few reads of the rollout's rows in ``manage.py shell``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.conftest import signed_host
from tests.support import ControlPlaneProcess, HostProcess, http_get

TAGS = ("kitchen", "greenhouse")
DEVICES_PER_TAG = 5
POLL_S = 0.5
"""Between two reads through ``manage.py``: each starts Django, on two busy cores."""


@dataclass
class RolloutFleet:
    control_plane: ControlPlaneProcess
    devices: dict[str, HostProcess]
    """By device name."""

    def manage_json(self, *args: str) -> Any:
        return json.loads(self.control_plane.manage(*args))

    def shell_json(self, code: str) -> Any:
        """Runs ``code`` (which must end by setting ``result``) in ``manage.py shell``."""
        program = f"import json\n{code}\nprint(json.dumps(result, default=str))"
        output = self.control_plane.manage("shell", "-c", program)
        return json.loads(output.strip().splitlines()[-1])

    def start(self, plugin: str, version: str, *options: str) -> dict[str, Any]:
        """Starts a rollout and returns once its first wave's desired states are written
        (the worker plans and delivers; the command alone returns at once)."""
        summary = self.manage_json(
            "rollout", "start", plugin, version, "all", "--wait", "120", *options
        )
        return summary  # type: ignore[no-any-return]

    def status(self, rollout_id: int) -> dict[str, Any]:
        return self.manage_json("rollout", "status", str(rollout_id))  # type: ignore[no-any-return]

    def wait_status(
        self,
        rollout_id: int,
        done: Callable[[dict[str, Any]], bool],
        timeout: float,
        what: str,
    ) -> dict[str, Any]:
        """Polls ``rollout status`` until ``done`` holds for it; fails with the last one."""
        deadline = time.monotonic() + timeout
        summary = self.status(rollout_id)
        while not done(summary):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {json.dumps(summary)}")
            time.sleep(POLL_S)
            summary = self.status(rollout_id)
        return summary

    def members(self, rollout_id: int) -> dict[str, tuple[int, str]]:
        """Device name to (wave index, member state) of a rollout."""
        rows = self.shell_json(
            "from control_plane.rollouts.models import Member\n"
            f"result = {{m.device.name: [m.wave, m.state] for m in Member.objects"
            f".filter(rollout_id={rollout_id}).select_related('device')}}"
        )
        return {name: (wave, state) for name, (wave, state) in rows.items()}

    def wave_of(self, rollout_id: int, index: int) -> list[str]:
        return sorted(n for n, (w, _) in self.members(rollout_id).items() if w == index)

    def event_devices(self, plugin: str, version: str) -> set[str]:
        """Devices that reported any event about ``plugin`` ``version`` to the control plane."""
        names = self.shell_json(
            "from control_plane.devices.models import DeviceEvent\n"
            "result = sorted(set(DeviceEvent.objects"
            f".filter(plugin={plugin!r}, version={version!r})"
            ".values_list('device__name', flat=True)))"
        )
        return set(names)


def hello(device: HostProcess) -> tuple[int, str]:
    return http_get(f"{device.url}/plugins/hello/")


def serves(device: HostProcess, n: int) -> bool:
    try:
        return hello(device) == (200, f"hello from version {n}")
    except OSError:
        return False


def agent_state(device: HostProcess) -> dict[str, Any]:
    path = device.workdir / "state" / "agent" / "agent.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def events(device: HostProcess, plugin: str, version: str) -> list[dict[str, Any]]:
    """The device's own recent events about ``plugin`` ``version`` (from /healthz)."""
    return [
        e
        for e in device.healthz()["events"]  # type: ignore[attr-defined]
        if e["plugin"] == plugin and e["version"] == version
    ]


def at(text: str) -> float:
    """A timestamp of the rollout summary, as seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp()


def kinds(summary: dict[str, Any]) -> list[str]:
    """The summary's decisions' kinds, in order, without the progress notes."""
    return [d["kind"] for d in summary["decisions"] if d["kind"] != "progress"]


@contextmanager
def rollout_fleet(
    tmp_path_factory: pytest.TempPathFactory, compiled_dir: Path
) -> Iterator[RolloutFleet]:
    """Starts the control plane and ten enrolled, tagged devices.

    The devices start one by one from the calling thread: `HostProcess` children get
    SIGTERM when the thread that started them ends (PR_SET_PDEATHSIG), so a thread pool
    would kill them as soon as it shut down.
    """
    control_plane = ControlPlaneProcess(
        tmp_path_factory.mktemp("rollout-control-plane"), compiled_dir=compiled_dir
    )
    control_plane.set_up()
    devices: dict[str, HostProcess] = {}
    try:
        control_plane.start()
        token = control_plane.enrollment_token(uses=len(TAGS) * DEVICES_PER_TAG)
        for tag in TAGS:
            for i in range(1, DEVICES_PER_TAG + 1):
                name = f"pi-{tag}-{i:02d}"
                workdir = tmp_path_factory.mktemp(name)
                compile_locally = not devices  # one may compile; the rest download
                devices[name] = signed_host(workdir, control_plane, token, name, compile_locally)
        for device in devices.values():  # from this thread: a child dies with its thread
            device.start(timeout=180)
        fleet = RolloutFleet(control_plane, devices)
        fleet.shell_json(
            "from control_plane.devices.models import Device, Tag\n"
            "for d in Device.objects.all():\n"
            "    d.tags.set([Tag.objects.get_or_create(name=d.name.split('-')[1])[0]])\n"
            "result = Device.objects.count()"
        )
        yield fleet
    finally:
        with ThreadPoolExecutor(max_workers=len(devices) or 1) as pool:
            list(pool.map(lambda d: d.stop(), devices.values()))
        control_plane.stop()
