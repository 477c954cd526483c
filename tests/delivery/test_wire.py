"""The wire's shapes: what one side writes the other parses back, and nothing hostile gets in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_common.footprint import Footprint, Limits
from fleet_common.manifest import parse_manifest
from fleet_common.wire.events import EventKind
from fleet_common.wire.heartbeat import (
    MAX_EVENTS,
    MAX_PLUGINS,
    MAX_READINGS,
    MAX_TEXT,
    Enrollment,
    EventReport,
    Heartbeat,
    PluginReport,
    ReadingReport,
    ReportError,
    parse_enrollment,
    parse_heartbeat,
)
from fleet_common.wire.reports import EngineReport
from fleet_common.wire.statements import (
    MAX_COMPILED_BYTES,
    CompiledArtifact,
    DesiredState,
    Release,
    StatementError,
    compiled_statement,
    desired_state_statement,
    key_id,
    release_statement,
    sign,
)

ENGINE = EngineReport("e1" * 32, "aarch64-unknown-linux-gnu", ("has_fp16", "has_lse"))
MOMENT = datetime(2026, 11, 23, 20, 0, 0, 123456, tzinfo=UTC)
MANIFEST = parse_manifest(
    {"name": "dashboard", "version": "1.2.0", "world": "dashboard", "capabilities": {"dht22": [4]}}
)
CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n"
"""The wire checks a CSR's shape only; the signer checks its signature."""
FOOTPRINT = Footprint(
    memories=(Limits(1 << 20, None),), tables=(Limits(10, 10),), core_instances=3, core_modules=2
)


def wire(value: dict[str, object]) -> Any:
    """What the other side decodes: the JSON text, read back."""
    return json.loads(json.dumps(value))


def heartbeat_body(**changes: object) -> dict[str, object]:
    body = Heartbeat(
        host_version="0.3.0",
        engine=ENGINE,
        plugins=(PluginReport("hello", "1.0.0", "ab" * 32, "running", 2, "trap: unreachable"),),
        readings=(ReadingReport("dht22:4", 21.5, 40.0, MOMENT),),
        events=(EventReport(MOMENT, "hello", "1.0.0", EventKind.INSTALLED, ""),),
    ).to_json()
    return {**wire(body), **changes}


def test_a_heartbeat_the_device_writes_parses_back_to_the_same_values():
    sent = Heartbeat(
        host_version="0.3.0",
        engine=ENGINE,
        plugins=(
            PluginReport("hello", "1.0.0", "ab" * 32, "running", 2, "trap: unreachable"),
            PluginReport("broken", state="failed", last_error="no such world"),
        ),
        readings=(ReadingReport("dht22:4", 21.5, 40.0, MOMENT),),
        events=tuple(EventReport(MOMENT, "hello", "1.0.0", kind, "detail") for kind in EventKind),
    )

    assert parse_heartbeat(wire(sent.to_json())) == sent


def test_a_heartbeat_without_an_engine_parses_with_none():
    sent = Heartbeat(host_version="0.1.0", engine=None)

    assert "engine" not in sent.to_json()
    assert parse_heartbeat(wire(sent.to_json())) == sent


def test_an_enrollment_the_device_writes_parses_back_to_the_same_values():
    for sent in (
        Enrollment(
            enrollment_token="t0k3n",
            name="pi-1",
            host_version="0.3.0",
            engine=ENGINE,
            channel_csr=CSR,
        ),
        Enrollment(enrollment_token="t0k3n", name="pi-2"),
    ):
        assert parse_enrollment(wire(sent.to_json())) == sent


def test_a_legacy_agent_url_from_an_old_host_is_ignored():
    body = {"enrollment_token": "t0k3n", "name": "pi-1", "agent_url": "http://10.0.0.1:3000"}

    assert parse_enrollment(body) == Enrollment(enrollment_token="t0k3n", name="pi-1")
    assert "agent_url" not in Enrollment(enrollment_token="t0k3n", name="pi-1").to_json()


def test_a_heartbeat_carries_the_accepted_desired_sequence_only_when_it_has_one():
    current = Heartbeat(host_version="0.4.0", engine=None, desired_sequence=7)

    assert parse_heartbeat(wire(current.to_json())).desired_sequence == 7
    assert "desired_sequence" not in Heartbeat(host_version="0.4.0", engine=None).to_json()
    assert parse_heartbeat({"desired_sequence": None}).desired_sequence is None


@pytest.mark.parametrize("value", [-1, 2**53, 1.0, "7", True, [7]])
def test_a_desired_sequence_that_is_not_a_bounded_count_is_refused(value):
    with pytest.raises(ReportError, match="desired_sequence must be an integer from 0 below"):
        parse_heartbeat({"desired_sequence": value})


def test_the_largest_desired_sequence_is_accepted():
    assert parse_heartbeat({"desired_sequence": 2**53 - 1}).desired_sequence == 2**53 - 1


def test_an_enrollment_never_shows_its_token():
    assert "t0k3n" not in repr(Enrollment(enrollment_token="t0k3n", name="pi-1"))


def test_iso_timestamps_with_a_zone_are_accepted():
    event = {"at": "2026-11-23T20:00:00.123456Z", "plugin": "hello", "kind": "trapped"}

    assert parse_heartbeat({"events": [event]}).events[0].at == MOMENT


def test_an_unknown_event_kind_is_kept_as_other_with_its_kind_in_the_detail():
    event = {"at": 1.8e9, "plugin": "hello", "kind": "teleported", "detail": "x" * MAX_TEXT}

    parsed = parse_heartbeat({"events": [event]}).events[0]

    assert parsed.kind == "other"
    assert parsed.detail.startswith("[teleported] x")
    assert len(parsed.detail) == MAX_TEXT


def test_long_free_text_is_cut_not_refused():
    plugin = {"name": "hello", "last_error": "e" * 50_000}

    assert parse_heartbeat({"plugins": [plugin]}).plugins[0].last_error == "e" * MAX_TEXT


def test_fields_the_protocol_does_not_know_are_ignored():
    plugin = {"name": "hello", "calls": 7, "traps": {"unreachable": 1}}

    assert parse_heartbeat({"plugins": [plugin], "future": [1]}).plugins == (PluginReport("hello"),)


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host_version": 3}, "host_version must be a string"),
        ({"host_version": "v" * 65}, "host_version must be a string of at most 64"),
        ({"engine": "x86"}, "engine must be an object"),
        ({"engine": {"key": "AB" * 32, "target": "x86_64-unknown-linux-gnu"}}, "engine.key"),
        ({"engine": {"key": "ab" * 32, "target": "riscv64"}}, "engine.target must be one of"),
        (
            {"engine": {**ENGINE.to_json(), "features": [{"has_lse": True}]}},
            "engine.features must be a list of ISA flags",
        ),
        (
            {"engine": {**ENGINE.to_json(), "features": ["has_x"] * 65}},
            "engine.features must be a list of ISA flags",
        ),
        ({"plugins": {"name": "hello"}}, "plugins must be a list"),
        ({"plugins": [{"name": "p"}] * (MAX_PLUGINS + 1)}, "plugins has 101 entries"),
        ({"plugins": [_nested(20)]}, "plugins[0] must be an object"),
        ({"plugins": [{"version": "1"}]}, "plugins[0].name must be a non-empty string"),
        ({"plugins": [{"name": ""}]}, "plugins[0].name must be a non-empty string"),
        ({"plugins": [{"name": "p", "version": 1}]}, "plugins[0].version must be a string"),
        ({"plugins": [{"name": "p", "state": ["x"]}]}, "plugins[0].state must be a string"),
        ({"plugins": [{"name": "p", "trap_count": -1}]}, "plugins[0].trap_count must be a count"),
        ({"plugins": [{"name": "p", "trap_count": True}]}, "plugins[0].trap_count must be a count"),
        ({"plugins": [{"name": "p", "trap_count": "3"}]}, "plugins[0].trap_count must be a count"),
        ({"readings": "many"}, "readings must be a list"),
        ({"readings": [{}] * (MAX_READINGS + 1)}, "readings has 2001 entries"),
        ({"readings": [{"source": {"a": [1]}}]}, "readings[0].source must be a non-empty string"),
        (
            {"readings": [{"source": "s", "temperature_c": float("nan"), "humidity_pct": 1}]},
            "readings[0].temperature_c must be a number",
        ),
        (
            {"readings": [{"source": "s", "temperature_c": 1, "humidity_pct": float("inf")}]},
            "readings[0].humidity_pct must be a number",
        ),
        (
            {"readings": [{"source": "s", "temperature_c": True, "humidity_pct": 1}]},
            "readings[0].temperature_c must be a number",
        ),
        (
            {"readings": [{"source": "s", "temperature_c": 1, "humidity_pct": 1, "taken_at": 5}]},
            "readings[0].taken_at is before the year 2000",
        ),
        ({"events": [{}] * (MAX_EVENTS + 1)}, "events has 2001 entries"),
        ({"events": [{"at": 1.8e9, "kind": "installed"}]}, "events[0].plugin must be"),
        ({"events": [{"at": 1.8e9, "plugin": "p", "kind": 7}]}, "events[0].kind must be"),
        ({"events": [{"at": 1.8e9, "plugin": "p"}]}, "events[0].kind must be"),
        ({"events": [{"at": 1e20, "plugin": "p", "kind": "installed"}]}, "events[0].at is out of"),
        ({"events": [{"at": True, "plugin": "p", "kind": "installed"}]}, "events[0].at must be"),
        ({"events": [{"at": None, "plugin": "p", "kind": "installed"}]}, "events[0].at must be"),
        (
            {"events": [{"at": "yesterday", "plugin": "p", "kind": "installed"}]},
            "events[0].at is not an ISO 8601 time",
        ),
        (
            {"events": [{"at": "2026-11-23T20:00:00", "plugin": "p", "kind": "installed"}]},
            "events[0].at has no time zone",
        ),
    ],
)
def test_a_malformed_heartbeat_is_refused_naming_the_field(changes, message):
    with pytest.raises(ReportError) as refused:
        parse_heartbeat(heartbeat_body(**changes))

    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("body", [[], "heartbeat", None, 7])
def test_a_heartbeat_must_be_an_object(body):
    with pytest.raises(ReportError, match="the heartbeat must be a JSON object"):
        parse_heartbeat(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({"name": "pi"}, "enrollment_token is required"),
        ({"enrollment_token": "x"}, "name is required"),
        ({"enrollment_token": "x", "name": ""}, "name is required"),
        ({"enrollment_token": 7, "name": "pi"}, "enrollment_token must be a string"),
        ({"enrollment_token": "x", "name": ["pi"]}, "name must be a string"),
        ({"enrollment_token": "x", "name": "pi", "channel_csr": 7}, "channel_csr must be a PEM"),
        (
            {"enrollment_token": "x", "name": "pi", "channel_csr": "-----BEGIN CERTIFICATE-----"},
            "channel_csr is not a PEM CERTIFICATE REQUEST block",
        ),
        (
            {"enrollment_token": "x", "name": "pi", "channel_csr": "A" * 4097},
            "channel_csr is longer than 4096 bytes",
        ),
        ({"enrollment_token": "x", "name": "pi", "host_version": "v" * 65}, "host_version"),
        ({"enrollment_token": "x" * 513, "name": "pi"}, "enrollment_token is longer than 512"),
        ({"enrollment_token": "x", "name": "pi", "engine": [ENGINE.key]}, "engine must be"),
    ],
)
def test_a_malformed_enrollment_is_refused_naming_the_field(body, message):
    with pytest.raises(ReportError) as refused:
        parse_enrollment(body)

    assert str(refused.value).startswith(message)


# Signed statements: the desired state and the compiled artifacts it carries.


@pytest.fixture
def fleet_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trusted(fleet_key):
    return {key_id(fleet_key.public_key()): fleet_key.public_key()}


def _release(key: Ed25519PrivateKey, serial: int = 3) -> tuple[dict[str, Any], Release]:
    statement = release_statement(MANIFEST.to_data(), serial, "ab" * 32, 1234)
    envelope = sign(statement, key)
    public = key.public_key()
    return statement, Release.from_envelope(envelope, {key_id(public): public})


def _compiled_envelope(key: Ed25519PrivateKey, **changes: Any) -> dict[str, str]:
    release, _ = _release(key)
    statement = compiled_statement(release, ENGINE.to_json(), "cd" * 32, 4096, FOOTPRINT)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = statement
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return sign(statement, key)


def test_a_compiled_statement_verifies_and_matches_its_release(fleet_key, trusted):
    _, release = _release(fleet_key)

    compiled = CompiledArtifact.from_envelope(_compiled_envelope(fleet_key), trusted)

    assert (compiled.plugin, compiled.version, compiled.serial) == ("dashboard", "1.2.0", 3)
    assert (compiled.component_sha256, compiled.component_size) == ("ab" * 32, 1234)
    assert (compiled.engine_key, compiled.target, compiled.features) == (
        ENGINE.key,
        ENGINE.target,
        ENGINE.features,
    )
    assert (compiled.sha256, compiled.size, compiled.footprint) == ("cd" * 32, 4096, FOOTPRINT)
    assert compiled.problem_for(release, ENGINE.key) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"artifact__sha256": "cd" * 16}, "digest that is not SHA-256"),
        ({"component__sha256": "ab"}, "digest that is not SHA-256"),
        ({"engine__key": ""}, "digest that is not SHA-256"),
        ({"artifact__size": 0}, "outside 1.."),
        ({"artifact__size": -5}, "outside 1.."),
        ({"artifact__size": MAX_COMPILED_BYTES + 1}, "outside 1.."),
        ({"artifact__size": "big"}, "malformed compiled statement"),
        ({"serial": None}, "malformed compiled statement"),
        ({"engine": "aarch64"}, "malformed compiled statement"),
        ({"component__footprint": None}, "malformed compiled statement: footprint must be"),
        ({"component__footprint__memories": "lots"}, "malformed compiled statement: footprint"),
        ({"component__footprint__memories": [[-1, None]]}, "malformed compiled statement"),
        ({"component__footprint__memories": [[1, 2]] * 100_000}, "malformed compiled statement"),
        ({"component__footprint__core_instances": True}, "malformed compiled statement"),
    ],
)
def test_a_malformed_compiled_statement_is_refused(fleet_key, trusted, changes, message):
    with pytest.raises(StatementError, match=message):
        CompiledArtifact.from_envelope(_compiled_envelope(fleet_key, **changes), trusted)


def test_a_compiled_statement_by_an_untrusted_key_is_refused(trusted):
    with pytest.raises(StatementError, match="untrusted key"):
        CompiledArtifact.from_envelope(_compiled_envelope(Ed25519PrivateKey.generate()), trusted)


def test_a_release_is_not_a_compiled_statement(fleet_key, trusted):
    release, _ = _release(fleet_key)

    with pytest.raises(StatementError, match="expected a pi-fleet/compiled@1 statement"):
        CompiledArtifact.from_envelope(sign(release, fleet_key), trusted)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"plugin": "other"}, "compiled for other 1.2.0, not dashboard 1.2.0"),
        ({"version": "1.1.0"}, "compiled for dashboard 1.1.0, not dashboard 1.2.0"),
        ({"component__sha256": "ef" * 32}, "compiled from other bytes than the release signs"),
        ({"component__size": 1235}, "compiled from other bytes than the release signs"),
        ({"engine__key": "0f" * 32}, "compiled for engine key 0f0f0f0f0f0f0f0f, this device's"),
    ],
)
def test_problem_for_names_the_mismatch(fleet_key, trusted, changes, problem):
    _, release = _release(fleet_key)
    compiled = CompiledArtifact.from_envelope(_compiled_envelope(fleet_key, **changes), trusted)

    assert (compiled.problem_for(release, ENGINE.key) or "").startswith(f"it was {problem}")


def test_problem_for_names_another_engine_key_of_the_device(fleet_key, trusted):
    _, release = _release(fleet_key)
    compiled = CompiledArtifact.from_envelope(_compiled_envelope(fleet_key), trusted)

    assert compiled.problem_for(release, "aa" * 32) == (
        f"it was compiled for engine key {ENGINE.key[:16]}, this device's is {'aa' * 8}"
    )


def _desired(key: Ed25519PrivateKey, **changes: object) -> dict[str, str]:
    statement = {**desired_state_statement("d-7", 4, [{"x": "y"}], [{"a": "b"}]), **changes}
    return sign(statement, key)


def test_a_desired_state_verifies_for_its_device(fleet_key, trusted):
    state = DesiredState.from_envelope(_desired(fleet_key), trusted, "d-7")

    assert (state.device_id, state.sequence) == ("d-7", 4)
    assert (state.releases, state.compiled) == ([{"x": "y"}], [{"a": "b"}])


def test_a_desired_state_from_before_compiled_artifacts_has_none(fleet_key, trusted):
    statement = desired_state_statement("d-7", 4, [], [])
    del statement["compiled"]

    assert DesiredState.from_envelope(sign(statement, fleet_key), trusted, "d-7").compiled == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device_id": "d-8"}, "addressed to another device"),
        ({"device_id": None}, "addressed to another device"),
        ({"sequence": None}, "no sequence number"),
        ({"sequence": -1}, "no sequence number"),
        ({"sequence": True}, "no sequence number"),
        ({"sequence": "4"}, "no sequence number"),
        ({"sequence": 4.0}, "no sequence number"),
        ({"releases": None}, "no list of releases"),
        ({"releases": {"dashboard": "1.2.0"}}, "no list of releases"),
        ({"compiled": None}, "compiled artifacts are not a list"),
        ({"compiled": "cd" * 32}, "compiled artifacts are not a list"),
    ],
)
def test_a_wrong_desired_state_is_refused(fleet_key, trusted, changes, message):
    with pytest.raises(StatementError, match=message):
        DesiredState.from_envelope(_desired(fleet_key, **changes), trusted, "d-7")


def test_an_artifact_fits_a_later_release_of_the_same_bytes(fleet_key, trusted):
    """A rollback is a new serial for old code: it runs the machine code signed before."""
    _, release = _release(fleet_key)
    compiled = CompiledArtifact.from_envelope(_compiled_envelope(fleet_key, serial=2), trusted)

    assert compiled.problem_for(release, ENGINE.key) is None
