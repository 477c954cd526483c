"""The heartbeat's health, vitals and log tail: written by the device, parsed back strictly."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from fleet_common.wire.health import (
    MAX_HEALTH,
    MAX_LOG_LINES,
    MAX_LOG_TEXT,
    LogLine,
    PluginHealth,
    Vitals,
)
from fleet_common.wire.heartbeat import Heartbeat, ReportError, parse_heartbeat

MOMENT = datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC)
HEALTH = PluginHealth(
    plugin="ticker",
    version="2.0.0",
    requests=40,
    errors=3,
    traps={"crash": 2, "timeout": 1},
    deadline_hits=1,
    fallbacks=1,
    ticks_failed=2,
    self_check="passed",
    p50_ms=1.25,
    p99_ms=40.0,
    sensor_age_s=2.5,
)
VITALS = Vitals(
    ip="192.0.2.7",
    os="Debian GNU/Linux 12 (bookworm)",
    kernel="6.6.51+rpt-rpi-v8",
    uptime_s=86400.5,
    cpu_temp_c=48.3,
    mem_total_bytes=1 << 30,
    mem_available_bytes=1 << 29,
    disk_total_bytes=32 << 30,
    disk_free_bytes=20 << 30,
)
LINE = LogLine(MOMENT, "ticker", "stderr", "warning", "ValueError: this version is broken")


def wire(value: dict[str, object]) -> Any:
    return json.loads(json.dumps(value))


def body(**changes: object) -> dict[str, Any]:
    sent = Heartbeat("0.4.0", None, health=(HEALTH,), vitals=VITALS, log_tail=(LINE,))
    return {**wire(sent.to_json()), **changes}


def health(**changes: object) -> dict[str, Any]:
    return body(health=[{**wire(HEALTH.to_json()), **changes}])


def test_health_vitals_and_log_lines_parse_back_to_the_same_values():
    sent = Heartbeat("0.4.0", None, health=(HEALTH,), vitals=VITALS, log_tail=(LINE,))

    assert parse_heartbeat(wire(sent.to_json())) == sent


def test_a_heartbeat_from_an_older_device_without_the_new_keys_parses_to_the_defaults():
    old = {"host_version": "0.3.0", "plugins": [], "readings": [], "events": []}

    parsed = parse_heartbeat(old)

    assert (parsed.health, parsed.vitals, parsed.log_tail) == ((), None, ())


def test_an_entry_with_only_plugin_and_version_counts_nothing():
    parsed = parse_heartbeat(body(health=[{"plugin": "hello", "version": "1.0.0"}]))

    assert parsed.health == (PluginHealth("hello", "1.0.0"),)


def test_unknown_keys_are_ignored_and_an_unknown_self_check_reads_as_none():
    parsed = parse_heartbeat(health(self_check="skipped", future_counter=7))

    assert parsed.health[0].self_check is None
    assert parsed.health[0].requests == 40


def test_trap_kinds_a_newer_host_adds_are_kept():
    parsed = parse_heartbeat(health(traps={"stack-overflow": 2}))

    assert parsed.health[0].traps == {"stack-overflow": 2}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"plugin": ""}, "health[0].plugin"),
        ({"version": None}, "health[0].version"),
        ({"requests": -1}, "health[0].requests"),
        ({"errors": 1.5}, "health[0].errors"),
        ({"fallbacks": True}, "health[0].fallbacks"),
        ({"ticks_failed": "3"}, "health[0].ticks_failed"),
        ({"traps": ["crash"]}, "health[0].traps"),
        ({"traps": {"crash": -2}}, "health[0].traps.crash"),
        ({"traps": {"": 1}}, "health[0].traps"),
        ({"traps": {f"kind{i}": 1 for i in range(17)}}, "health[0].traps"),
        ({"p50_ms": float("nan")}, "health[0].p50_ms"),
        ({"p99_ms": -1}, "health[0].p99_ms"),
        ({"sensor_age_s": "old"}, "health[0].sensor_age_s"),
        ({"self_check": 1}, "health[0].self_check"),
        ({"memory_cap_hits": 1 << 63}, "health[0].memory_cap_hits"),
    ],
)
def test_a_bad_health_entry_is_refused_naming_its_field(changes, field):
    with pytest.raises(ReportError, match=f"^{re.escape(field)}"):
        parse_heartbeat(health(**changes))


def test_more_health_entries_than_a_device_sends_are_refused():
    entries = [{"plugin": f"p{i}", "version": "1"} for i in range(MAX_HEALTH + 1)]

    with pytest.raises(ReportError, match="health has 101 entries"):
        parse_heartbeat(body(health=entries))


@pytest.mark.parametrize(
    ("vitals", "field"),
    [
        ("fine", "vitals must be an object"),
        ({"ip": 7}, "vitals.ip"),
        ({"uptime_s": -3}, "vitals.uptime_s"),
        ({"cpu_temp_c": -300}, "vitals.cpu_temp_c"),
        ({"cpu_temp_c": "hot"}, "vitals.cpu_temp_c"),
        ({"mem_total_bytes": 1.5}, "vitals.mem_total_bytes"),
        ({"disk_free_bytes": -1}, "vitals.disk_free_bytes"),
    ],
)
def test_bad_vitals_are_refused_naming_the_field(vitals, field):
    with pytest.raises(ReportError, match=f"^{field}"):
        parse_heartbeat(body(vitals=vitals))


def test_vitals_a_device_cannot_read_are_left_out():
    parsed = parse_heartbeat(body(vitals={"kernel": "6.6.51"}))

    assert parsed.vitals == Vitals(kernel="6.6.51")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"at": None}, r"log_tail\[0\].at"),
        ({"at": 12}, r"log_tail\[0\].at is before the year 2000"),
        ({"plugin": ""}, r"log_tail\[0\].plugin"),
        ({"stream": 3}, r"log_tail\[0\].stream"),
        ({"level": None}, r"log_tail\[0\].level"),
        ({"text": ["a"]}, r"log_tail\[0\].text"),
    ],
)
def test_a_bad_log_line_is_refused_naming_its_field(changes, field):
    with pytest.raises(ReportError, match=f"^{field}"):
        parse_heartbeat(body(log_tail=[{**wire(LINE.to_json()), **changes}]))


def test_a_long_log_line_is_cut_not_refused():
    parsed = parse_heartbeat(body(log_tail=[{**wire(LINE.to_json()), "text": "x" * 5000}]))

    assert parsed.log_tail[0].text == "x" * MAX_LOG_TEXT


def test_more_log_lines_than_a_device_sends_are_refused():
    lines = [wire(LINE.to_json())] * (MAX_LOG_LINES + 1)

    with pytest.raises(ReportError, match="log_tail has 101 entries"):
        parse_heartbeat(body(log_tail=lines))


@pytest.mark.parametrize("key", ["health", "log_tail"])
def test_a_list_field_that_is_not_a_list_is_refused(key):
    with pytest.raises(ReportError, match=f"^{key} must be a list"):
        parse_heartbeat(body(**{key: {"plugin": "x"}}))


def test_the_wire_names_every_trap_kind_a_device_reports():
    from device_host.errors import TrapKind
    from fleet_common.wire.health import TRAP_KINDS

    assert set(TRAP_KINDS) == {str(kind) for kind in TrapKind}
