"""Staged rollouts on ten real device hosts: waves, a bad canary, operators, outages.

The tests share one fleet and run in order: each starts from the versions the one before
left (hello 1.0.0 on every device at first). Soaks are seconds, not minutes, so the whole
file stays within a few minutes on two cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.rollout_fleet import (
    RolloutFleet,
    agent_state,
    at,
    events,
    hello,
    kinds,
    rollout_fleet,
    serves,
)
from tests.support import HostProcess, wait_until

RESPONSE = 'return Response(200, [("content-type", "text/plain")], Body_Text(GREETING))'
Builder = Callable[..., Path]
"""The ``build`` fixture: builds a plugin variant, cached by content."""
WAVE_KINDS = ("wave-started", "wave-passed", "halted", "rolled-back", "aborted", "completed")


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, compiled_dir: Path, build: Builder
) -> Iterator[RolloutFleet]:
    with rollout_fleet(tmp_path_factory, compiled_dir) as fleet:
        fleet.control_plane.manage("publish_plugin", str(build("hello")), "--assign", "all")
        _wait_serving(fleet, fleet.devices.values(), 1)
        yield fleet


def _hello_version(build: Builder, n: int) -> Path:
    return build(
        "hello", replace={"version 1": f"version {n}"}, version=f"{n}.0.0", label=f"hello-v{n}"
    )


def _publish(fleet: RolloutFleet, folder: Path) -> None:
    fleet.control_plane.manage("publish_plugin", str(folder), "--approve")


def _wait_serving(
    fleet: RolloutFleet, devices: Iterable[HostProcess], n: int, timeout: float = 120
) -> None:
    for device in devices:
        wait_until(partial(serves, device, n), timeout, f"version {n} on {device.url}")


def _wave_kinds(summary: dict[str, Any]) -> list[str]:
    return [k for k in kinds(summary) if k in WAVE_KINDS]


def _serial(device: HostProcess) -> int:
    return int(agent_state(device)["highest_serial"].get("hello", 0))


def test_1_a_good_version_completes_every_wave(fleet: RolloutFleet, build: Builder) -> None:
    _publish(fleet, _hello_version(build, 2))

    started = fleet.start("hello", "2.0.0", "--waves", "10,50,100", "--soak", "3")

    _wait_serving(fleet, fleet.devices.values(), 2)
    summary = fleet.wait_status(
        started["id"], lambda s: s["status"] == "completed", 90, "the rollout to complete"
    )
    assert _wave_kinds(summary) == ["wave-started", "wave-passed"] * 3 + ["completed"]
    assert [w["size"] for w in summary["waves"]] == [1, 4, 5]
    for wave in summary["waves"]:
        assert wave["status"] == "passed"
        assert wave["counts"]["healthy"] == wave["size"], wave
    second = fleet.wave_of(started["id"], 1)
    assert {name.split("-")[1] for name in second} == {"kitchen", "greenhouse"}, second


def test_2_a_version_that_traps_on_requests_halts_at_the_canary_and_rolls_back(
    fleet: RolloutFleet, build: Builder
) -> None:
    broken = build(
        "hello",
        replace={"version 1": "version 3", RESPONSE: 'raise ValueError("broken")'},
        version="3.0.0",
        label="hello-v3-broken",
    )
    _publish(fleet, broken)  # its self-check passes: the control plane approves it
    serials = {name: _serial(device) for name, device in fleet.devices.items()}

    started = fleet.start("hello", "3.0.0", "--soak", "30")

    rollout_id, bad_serial = started["id"], started["serial"]
    (canary_name,) = fleet.wave_of(rollout_id, 0)
    canary = fleet.devices[canary_name]
    wait_until(lambda: canary.plugin("hello").get("version") == "3.0.0", 60, "3.0.0 installed")
    answers = []
    for _ in range(100):
        answers.append(hello(canary))
        time.sleep(0.03)
    failed = [a for a in answers if a != (200, "hello from version 2")]
    print(f"\ncanary {canary_name}: {len(failed)} failed of {len(answers)} user requests")
    assert failed == [], failed[:5]

    summary = fleet.wait_status(
        rollout_id, lambda s: s["status"] == "rolled-back", 60, "the automatic rollback"
    )
    assert _wave_kinds(summary) == ["wave-started", "halted", "rolled-back"]
    assert canary_name in summary["halt_reason"]
    assert f"{canary_name}: reverted" in summary["halt_reason"]

    assert [w["status"] for w in summary["waves"]] == ["failed", "cancelled", "cancelled"]
    halted = next(d for d in summary["decisions"] if d["kind"] == "halted")
    assert halted["counts"]["reverted"] == 1, halted
    first_trap = min(e["at"] for e in events(canary, "hello", "3.0.0") if e["kind"] == "trapped")
    print(
        f"first trap to halt: {at(halted['at']) - first_trap:.2f} s "
        f"(halt reason: {summary['halt_reason']})"
    )

    for name, device in fleet.devices.items():
        if name == canary_name:
            continue
        assert events(device, "hello", "3.0.0") == [], name
        assert _serial(device) == serials[name] < bad_serial, name
        assert "3.0.0" not in device.log(), name
        assert serves(device, 2), name
    assert fleet.event_devices("hello", "3.0.0") == {canary_name}
    wait_until(lambda: _serial(canary) > bad_serial, 60, "the canary's rollback release")
    wait_until(lambda: canary.plugin("hello").get("version") == "2.0.0", 30, "2.0.0 again")
    assert serves(canary, 2)
    assert agent_state(canary)["releases"]["hello"]["serial"] > bad_serial


def test_3_a_paused_rollout_starts_no_wave_and_an_aborted_one_no_more(
    fleet: RolloutFleet, build: Builder
) -> None:
    _publish(fleet, _hello_version(build, 4))
    soak = 6
    started = fleet.start("hello", "4.0.0", "--waves", "10,50,100", "--soak", str(soak))
    rollout_id = started["id"]
    fleet.manage_json("rollout", "pause", str(rollout_id))
    (canary_name,) = fleet.wave_of(rollout_id, 0)
    later = fleet.wave_of(rollout_id, 2)
    serials = {name: _serial(fleet.devices[name]) for name in later}

    _wait_serving(fleet, [fleet.devices[canary_name]], 4, 60)
    time.sleep(soak + 3)  # healthy for longer than the soak, heartbeating all along

    paused = fleet.status(rollout_id)
    assert paused["status"] == "paused"
    assert [w["status"] for w in paused["waves"]] == ["running", "pending", "pending"]
    for name, device in fleet.devices.items():
        if name != canary_name:
            assert serves(device, 2), name

    fleet.manage_json("rollout", "resume", str(rollout_id))
    fleet.wait_status(
        rollout_id, lambda s: s["waves"][1]["status"] == "running", 60, "the second wave"
    )
    aborted = fleet.manage_json("rollout", "abort", str(rollout_id))

    assert aborted["status"] == "aborted"
    assert [w["status"] for w in aborted["waves"]] == ["passed", "cancelled", "cancelled"]
    assert _wave_kinds(aborted) == ["wave-started", "wave-passed", "wave-started", "aborted"]
    assert [k for k in kinds(aborted) if k in ("paused", "resumed")] == ["paused", "resumed"]
    time.sleep(3)  # several heartbeats: nothing more reaches the devices of the third wave
    for name in later:
        device = fleet.devices[name]
        assert serves(device, 2), name
        assert events(device, "hello", "4.0.0") == [], name
        assert _serial(device) == serials[name], name
    assert not (fleet.event_devices("hello", "4.0.0") & set(later))


def test_4_a_device_offline_during_its_wave_is_skipped_and_converges_when_back(
    fleet: RolloutFleet, build: Builder
) -> None:
    _publish(fleet, _hello_version(build, 5))
    started = fleet.start(
        "hello", "5.0.0", "--waves", "10,50,100", "--soak", "2", "--wave-timeout", "15"
    )
    rollout_id = started["id"]
    offline_name = fleet.wave_of(rollout_id, 2)[0]
    offline = fleet.devices[offline_name]
    offline.stop()
    assert fleet.status(rollout_id)["waves"][2]["status"] == "pending"

    summary = fleet.wait_status(
        rollout_id, lambda s: s["status"] == "completed", 150, "the rollout to complete"
    )

    assert _wave_kinds(summary) == ["wave-started", "wave-passed"] * 3 + ["completed"]
    assert summary["waves"][2]["counts"]["skipped"] == 1
    skipped = [d for d in summary["decisions"] if d["kind"] == "skipped"]
    assert len(skipped) == 1 and offline_name in skipped[0]["detail"]
    assert fleet.members(rollout_id)[offline_name] == (2, "skipped")
    online = [d for n, d in fleet.devices.items() if n != offline_name]
    _wait_serving(fleet, online, 5, 30)

    offline.start()
    _wait_serving(fleet, [offline], 5, 90)


def test_5_a_control_plane_restart_mid_rollout_resumes_where_it_was(
    fleet: RolloutFleet, build: Builder
) -> None:
    _publish(fleet, _hello_version(build, 6))
    started = fleet.start("hello", "6.0.0", "--waves", "10,50,100", "--soak", "8")
    rollout_id = started["id"]
    (canary_name,) = fleet.wave_of(rollout_id, 0)
    _wait_serving(fleet, [fleet.devices[canary_name]], 6, 60)
    before = fleet.status(rollout_id)
    assert before["status"] == "running"
    assert [w["status"] for w in before["waves"]] == ["running", "pending", "pending"]

    fleet.control_plane.stop()
    time.sleep(3)  # missed heartbeats; the canary soaks on
    fleet.control_plane.start()

    summary = fleet.wait_status(
        rollout_id, lambda s: s["status"] == "completed", 150, "the rollout to complete"
    )
    assert _wave_kinds(summary) == ["wave-started", "wave-passed"] * 3 + ["completed"]
    rollouts = fleet.shell_json(
        "from control_plane.rollouts.models import Rollout\n"
        "result = list(Rollout.objects.filter(version__version='6.0.0')"
        ".values_list('pk', flat=True))"
    )
    assert rollouts == [rollout_id]
    _wait_serving(fleet, fleet.devices.values(), 6, 60)
