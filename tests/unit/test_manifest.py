"""Manifests: what is accepted, and the message for what is not."""

from __future__ import annotations

import pytest

from fleet_common.errors import ManifestError
from fleet_common.manifest import Capabilities, load_manifest, parse_manifest

VALID = {"name": "fan-control", "version": "1.2.3", "world": "automation"}


def _error(**changes: object) -> str:
    data = {**VALID, **changes}
    with pytest.raises(ManifestError) as error:
        parse_manifest({k: v for k, v in data.items() if v is not None})
    return str(error.value)


def test_a_minimal_manifest_gets_defaults():
    manifest = parse_manifest(VALID)

    assert manifest.component == "fan-control.wasm"
    assert manifest.capabilities == Capabilities()
    assert (manifest.limits.memory_mib, manifest.limits.call_timeout_ms) == (64, 250)


def test_a_plugin_may_write_64_kib_a_minute_to_its_store_unless_it_declares_otherwise():
    default = parse_manifest(VALID)
    declared = parse_manifest({**VALID, "limits": {"kv-write-bytes-per-min": 4096}})

    assert default.limits.kv_write_bytes_per_min == 64 << 10
    assert declared.limits.kv_write_bytes_per_min == 4096


def test_the_write_budget_survives_the_round_trip_through_manifest_data():
    manifest = parse_manifest({**VALID, "limits": {"kv-write-bytes-per-min": 4096}})

    assert parse_manifest(manifest.to_data()) == manifest


def test_grants_are_described_for_people():
    manifest = parse_manifest(
        {**VALID, "capabilities": {"dht22": [4], "gpio-out": [17, 27], "kv-quota-bytes": 512}}
    )

    assert manifest.capabilities.describe() == [
        "dht22 pin 4",
        "gpio out pin 17",
        "gpio out pin 27",
        "kv 512 bytes",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": None}, "'name' is required"),
        ({"name": "Fan Control"}, "must be lowercase letters, digits and dashes"),
        ({"version": "1.2"}, "is not a semantic version"),
        ({"world": "camera"}, "world 'camera' is not one of"),
        ({"component": "../x.wasm"}, "component must be a file name ending in .wasm"),
        ({"capabilities": {"dht22": [40]}}, "dht22 pins [40] are not BCM GPIO pins 0..27"),
        ({"capabilities": {"gpio-out": "17"}}, "gpio-out must be a list of BCM pin numbers"),
        ({"capabilities": {"camera": True}}, "unknown capabilities ['camera']"),
        ({"capabilities": {"kv-quota-bytes": 1 << 30}}, "kv-quota-bytes must be 0..1048576"),
        ({"limits": {"memory-mib": 8}}, "memory-mib must be 16..512"),
        ({"limits": {"call-timeout-ms": 0}}, "call-timeout-ms must be 10..10000"),
        (
            {"limits": {"kv-write-bytes-per-min": 1 << 30}},
            "kv-write-bytes-per-min must be 1024..1048576",
        ),
        ({"limits": {"kv-write-bytes-per-min": "lots"}}, "kv-write-bytes-per-min must be"),
        ({"world": "demo:sensor-plugin"}, "a demo:sensor-plugin needs at least one dht22 pin"),
        ({"colour": "blue"}, "unknown keys ['colour']"),
    ],
)
def test_a_bad_manifest_is_refused_with_a_message_naming_the_problem(changes, message):
    assert message in _error(**changes)


def test_a_missing_manifest_file_says_where_it_was_expected(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        load_manifest(tmp_path / "manifest.toml")


def test_broken_toml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "manifest.toml"
    path.write_text("name = \n")

    with pytest.raises(ManifestError, match=f"{path}: cannot read manifest"):
        load_manifest(path)
