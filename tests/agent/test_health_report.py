"""Per-version health, vitals and log tail in heartbeats, from real plugins in wasmtime.

The counters are deltas since the last acknowledged heartbeat: a heartbeat that failed
loses nothing, and a fleet with nothing new to say sends an empty list.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_host.agent.health_report import VITALS_EVERY_S, HealthReporter
from device_host.errors import PluginTrap
from device_host.log_tail import LogTail
from device_host.metrics import Metrics
from device_host.plugins.events import EventLog
from device_host.plugins.health import HealthLedger
from device_host.plugins.manager import PluginManager
from device_host.plugins.quarantine import QuarantinePolicy
from device_host.plugins.scheduler import TickScheduler
from device_host.plugins.slot import PluginSlot
from device_host.readings import ReadingHistory
from device_host.runtime import HttpRequest, LoadContext, LoadedVersion
from fleet_common.errors import PluginLoadError
from fleet_common.manifest import load_manifest
from fleet_common.wire.events import EventKind
from fleet_common.wire.health import DROPPED_LINES_PLUGIN, PluginHealth
from fleet_common.wire.heartbeat import Heartbeat, parse_heartbeat
from tests.support import wait_until

CRASHING_PAGE = {
    '        return Response(200, [("content-type", "text/plain")], Body_Text(GREETING))': (
        '        raise ValueError("version 2 is broken")'
    )
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Device:
    manager: PluginManager
    reporter: HealthReporter
    clock: Clock

    def install(self, folder: Path) -> LoadedVersion:
        manifest = load_manifest(folder / "manifest.toml")
        return self.manager.install(manifest, folder / manifest.component)

    def slot(self, name: str) -> PluginSlot:
        slot = self.manager.slot(name)
        assert slot is not None
        return slot

    def health(self) -> dict[tuple[str, str], PluginHealth]:
        """What the next heartbeat would carry, without acknowledging it."""
        return {(h.plugin, h.version): h for h in self.reporter.pending().health}

    def heartbeat_acknowledged(self) -> None:
        self.reporter.acknowledge(self.reporter.pending())


@pytest.fixture
def device(load_context: LoadContext, sensor, tmp_path: Path) -> Iterator[Device]:
    manager = PluginManager(load_context, QuarantinePolicy(), EventLog(), Metrics())
    clock = Clock()
    yield Device(manager, HealthReporter(manager, {4: sensor}, tmp_path, "", clock), clock)
    manager.close()


def tick(slot: PluginSlot) -> str | None:
    return slot.call(
        lambda version: version.run_periodic(1_000).error,
        failed=lambda error: error is not None,
        tick=True,
    )


def get_page(slot: PluginSlot) -> int:
    return slot.call(
        lambda version: version.respond(HttpRequest("GET", "/"), lambda: None).status,
        retry_safe=True,
        failed=lambda status: status >= 500,
    )


def test_a_tick_that_traps_is_counted_as_a_request_an_error_a_crash_and_a_failed_tick(
    device, build
):
    device.install(build("ticker", replace={"BROKEN = False": "BROKEN = True"}, label="ticker-bad"))
    device.heartbeat_acknowledged()
    slot = device.slot("ticker")

    for _ in range(2):
        with pytest.raises(PluginTrap):
            tick(slot)

    entry = device.health()[("ticker", "1.0.0")]
    assert (entry.requests, entry.errors, entry.ticks_failed) == (2, 2, 2)
    assert entry.traps == {"crash": 2}
    assert (entry.deadline_hits, entry.memory_cap_hits) == (0, 0)
    assert entry.p50_ms is not None and entry.p99_ms is not None
    assert 0 < entry.p50_ms <= entry.p99_ms


def test_a_served_page_is_timed_and_a_version_with_a_self_check_says_it_passed(device, build):
    device.install(build("hello"))

    assert [get_page(device.slot("hello")) for _ in range(3)] == [200, 200, 200]

    entry = device.health()[("hello", "1.0.0")]
    assert (entry.requests, entry.errors, entry.traps) == (3, 0, {})
    assert entry.self_check == "passed"
    assert entry.p50_ms is not None and entry.p50_ms > 0


def test_a_version_that_starts_serving_is_sent_once_even_before_any_call(device, build):
    device.install(build("hello"))

    assert device.health()[("hello", "1.0.0")] == PluginHealth(
        "hello", "1.0.0", self_check="passed"
    )
    device.heartbeat_acknowledged()
    assert device.health() == {}


def test_a_version_without_a_self_check_reports_none_and_its_sensor_age(device, build):
    device.install(build("lab"))

    entry = device.health()[("lab", load_manifest(build("lab") / "manifest.toml").version)]

    assert entry.self_check is None
    assert entry.sensor_age_s is not None and entry.sensor_age_s >= 0


def test_a_version_refused_for_its_self_check_is_reported_failed(device, build):
    folder = build("bad-self-check")

    with pytest.raises(PluginLoadError, match="self-check failed"):
        device.install(folder)

    manifest = load_manifest(folder / "manifest.toml")
    entry = device.health()[(manifest.name, manifest.version)]
    assert (entry.self_check, entry.requests) == ("failed", 0)


def test_counters_of_a_failed_heartbeat_are_summed_into_the_next(device, build):
    device.install(build("hello"))
    slot = device.slot("hello")
    device.heartbeat_acknowledged()
    get_page(slot)
    failed = device.reporter.pending()  # sent, but the control plane never answered

    get_page(slot)
    get_page(slot)
    retried = device.reporter.pending()

    assert failed.health[0].requests == 1
    assert retried.health[0].requests == 3
    device.reporter.acknowledge(retried)
    assert device.health() == {}


def test_calls_made_while_a_heartbeat_is_on_its_way_go_in_the_next_one(device, build):
    device.install(build("hello"))
    slot = device.slot("hello")
    device.heartbeat_acknowledged()
    get_page(slot)
    sent = device.reporter.pending()

    get_page(slot)
    device.reporter.acknowledge(sent)

    assert device.health()[("hello", "1.0.0")].requests == 1


def test_idle_plugins_are_not_sent(device, build):
    device.install(build("hello"))
    device.install(build("ticker"))
    device.heartbeat_acknowledged()

    tick(device.slot("ticker"))

    assert list(device.health()) == [("ticker", "1.0.0")]


def test_a_release_that_keeps_trapping_is_reverted_and_its_failures_named_by_version(device, build):
    device.install(build("hello"))
    broken = build("hello", replace=CRASHING_PAGE, version="2.0.0", label="hello-crashes")
    device.install(broken)
    slot = device.slot("hello")
    device.heartbeat_acknowledged()

    answers = [get_page(slot) for _ in range(4)]

    assert answers == [200] * 4
    assert slot.version is not None and slot.version.manifest.version == "1.0.0"
    new, old = device.health()[("hello", "2.0.0")], device.health()[("hello", "1.0.0")]
    assert (new.requests, new.errors, new.fallbacks, new.traps) == (3, 3, 3, {"crash": 3})
    assert (old.requests, old.errors) == (4, 0)
    failures = {
        (e["kind"], e["version"])
        for e in device.manager.events.recent()
        if e["kind"] in (EventKind.REVERTED, EventKind.QUARANTINED)
    }
    assert failures == {(EventKind.QUARANTINED, "2.0.0"), (EventKind.REVERTED, "2.0.0")}
    reverted = next(e for e in device.manager.events.recent() if e["kind"] == EventKind.REVERTED)
    assert "back on 1.0.0" in reverted["detail"]


def test_what_plugins_log_and_print_goes_into_the_tail_once(device, build):
    device.install(build("ticker"))
    device.install(build("ticker", replace={"BROKEN = False": "BROKEN = True"}, label="tb"))
    device.heartbeat_acknowledged()
    slot = device.slot("ticker")
    with pytest.raises(PluginTrap):
        tick(slot)

    lines = device.reporter.pending().log_tail

    streams = {(line.plugin, line.stream) for line in lines}
    assert ("ticker", "stderr") in streams
    assert any("this version is broken" in line.text for line in lines)
    device.heartbeat_acknowledged()
    assert device.reporter.pending().log_tail == ()


def test_a_good_tick_logs_through_the_log_import(device, build):
    device.install(build("ticker"))
    device.heartbeat_acknowledged()

    assert tick(device.slot("ticker")) is None

    [line] = device.reporter.pending().log_tail
    assert (line.plugin, line.stream, line.level) == ("ticker", "log", "info")
    assert line.text.startswith("tick at ")


def test_vitals_go_in_the_first_heartbeat_then_at_most_once_a_minute(device):
    first = device.reporter.pending()
    assert first.vitals is not None and first.vitals.kernel
    assert device.reporter.pending().vitals is not None  # the first was never acknowledged
    device.reporter.acknowledge(first)

    device.clock.now += VITALS_EVERY_S / 2
    assert device.reporter.pending().vitals is None
    device.clock.now += VITALS_EVERY_S / 2
    assert device.reporter.pending().vitals is not None


def test_a_heartbeat_with_all_three_parses_back_on_the_control_plane_side(device, build):
    device.install(build("ticker"))
    tick(device.slot("ticker"))
    pending = device.reporter.pending()

    sent = Heartbeat(
        "0.4.0", None, health=pending.health, vitals=pending.vitals, log_tail=pending.log_tail
    )

    assert parse_heartbeat(sent.to_json()) == sent


def test_the_tail_keeps_the_newest_lines_and_says_how_many_it_dropped():
    tail = LogTail(capacity=50)
    for n in range(120):
        tail.add("chatty", "stdout", "info", f"line {n}")

    batch = tail.pending(limit=10)

    assert [line.text for line in batch.lines[1:]] == [f"line {n}" for n in range(111, 120)]
    assert batch.lines[0].plugin == DROPPED_LINES_PLUGIN
    assert batch.lines[0].text.startswith("111 older plugin log lines were dropped")
    tail.acknowledge(batch)
    tail.add("chatty", "stdout", "info", "after")
    assert [line.text for line in tail.pending().lines] == ["after"]


def test_latency_percentiles_come_from_a_bounded_histogram():
    ledger = HealthLedger()
    for ms in [1.0] * 98 + [100.0, 100.0]:
        ledger.record("p", "1", seconds=ms / 1000, failed=False)

    [entry] = ledger.pending().entries

    assert entry.p50_ms is not None and 1.0 <= entry.p50_ms < 1.1
    assert entry.p99_ms is not None and 100.0 <= entry.p99_ms < 110.0


def test_an_idle_device_heartbeats_vitals_first_and_empty_health_and_tail(agent):
    agent.control_plane.wait_for_heartbeats(3)

    bodies = [json.loads(body) for body in agent.control_plane.heartbeat_bodies]

    first = parse_heartbeat(bodies[0])
    assert first.vitals is not None
    assert first.vitals.kernel == os.uname().release
    assert first.vitals.mem_total_bytes and first.vitals.disk_free_bytes
    assert all(body["health"] == [] and body["log_tail"] == [] for body in bodies)
    assert any("vitals" not in body for body in bodies[1:])


def test_the_scheduler_counts_failed_ticks_under_the_version_that_ran_them(device, build):
    device.install(build("ticker", replace={"BROKEN = False": "BROKEN = True"}, label="ticker-bad"))
    device.heartbeat_acknowledged()
    scheduler = TickScheduler(device.manager, ReadingHistory(), Metrics())
    scheduler.start()
    try:
        wait_until(
            lambda: (
                device.health().get(("ticker", "1.0.0"), PluginHealth("", "")).ticks_failed >= 2
            ),
            15,
            "two failed ticks",
        )
    finally:
        scheduler.stop()

    entry = device.health()[("ticker", "1.0.0")]
    assert entry.requests == entry.errors == entry.ticks_failed == entry.traps["crash"]
