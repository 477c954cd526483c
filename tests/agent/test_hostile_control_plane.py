"""A control plane that answers garbage: the agent refuses it, keeps going, and says so."""

from __future__ import annotations

import os
import time

import pytest

from tests.agent.conftest import GOOD_HEARTBEAT, GOOD_TOKEN, AgentUnderTest
from tests.support import wait_until


def _answer_badly_then_recover(agent: AgentUnderTest, answer: bytes) -> dict[str, object]:
    """Serves ``answer`` until the agent has taken it and heartbeated again; returns its problem."""
    agent.control_plane.heartbeat_answer = answer
    agent.control_plane.wait_for_heartbeats(2)
    problem = agent.status()["problems"]["heartbeat"]  # type: ignore[index]
    agent.control_plane.heartbeat_answer = GOOD_HEARTBEAT
    wait_until(lambda: "heartbeat" not in agent.status()["problems"], 20, "recovery")  # type: ignore[operator]
    return problem  # type: ignore[no-any-return]


def test_an_enrollment_answer_with_a_header_injecting_token_is_refused_and_retried(agent):
    agent.control_plane.wait_for_heartbeats(1)

    assert len(agent.control_plane.enrolls) == 2
    assert {auth for _, auth in agent.control_plane.heartbeats} == {f"Bearer {GOOD_TOKEN}"}
    assert agent.status()["device_id"] == "d-7"


def test_a_text_heartbeat_interval_is_refused_and_the_agent_keeps_heartbeating(agent):
    problem = _answer_badly_then_recover(agent, b'{"desired": null, "heartbeat_interval_s": "abc"}')

    assert "heartbeat_interval_s must be a finite number, not 'abc'" in problem["message"]
    assert agent.status()["healthy"] is True


def test_a_nan_heartbeat_interval_is_refused_and_the_agent_keeps_heartbeating(agent):
    problem = _answer_badly_then_recover(agent, b'{"desired": null, "heartbeat_interval_s": NaN}')

    assert "not nan" in problem["message"]


def test_an_answer_nested_too_deeply_is_refused_and_the_agent_keeps_heartbeating(agent):
    deep = b'{"desired": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"

    problem = _answer_badly_then_recover(agent, deep)

    assert "nested deeper than 32 levels" in problem["message"]


@pytest.mark.parametrize("interval", [b"0", b"-5", b"0.0001"])
def test_a_tiny_heartbeat_interval_is_clamped_to_one_second(agent, interval):
    answer = b'{"desired": null, "heartbeat_interval_s": %s}' % interval
    agent.control_plane.heartbeat_answer = answer
    agent.control_plane.wait_for_heartbeats(2)
    before = len(agent.control_plane.heartbeats)

    time.sleep(3)

    assert len(agent.control_plane.heartbeats) - before <= 4
    assert agent.status()["heartbeat_interval_s"] == 1.0
    agent.control_plane.heartbeat_answer = GOOD_HEARTBEAT


def test_a_desired_state_that_fails_verification_is_an_agent_problem_not_a_plugin(agent):
    forged = b'{"statement": "{}", "key_id": "0000000000000000", "signature": "AA=="}'
    agent.control_plane.heartbeat_answer = b'{"desired": %s, "heartbeat_interval_s": 1}' % forged
    agent.control_plane.wait_for_heartbeats(2)

    health = agent.host.healthz()
    assert health["plugins"] == []
    assert health["status"] == "ok"
    assert "untrusted key" in health["agent"]["problems"]["desired-state"]["message"]  # type: ignore[index]
    refusals = [e for e in health["events"] if e["plugin"] == "desired-state"]  # type: ignore[attr-defined]
    assert len(refusals) == 1 and refusals[0]["kind"] == "refused"
    agent.control_plane.heartbeat_answer = GOOD_HEARTBEAT


def test_a_crash_in_the_agent_loop_is_supervised_reported_and_recovered_from(agent):
    """A state file that cannot be written (here: a directory in its place) raises in the loop
    once there is something to write (a newer desired state)."""
    agent.control_plane.wait_for_heartbeats(1)
    os.unlink(agent.state_file)
    os.mkdir(agent.state_file)

    def crashing() -> dict[str, object] | None:
        _, agent.control_plane.heartbeat_answer = agent.desired_answer()  # each one is written
        status = agent.status()
        return status if status["restarts"] >= 1 and status["consecutive_failures"] else None

    try:
        crashed = wait_until(crashing, 20, "a supervised restart")
        assert "IsADirectoryError" in crashed["last_error"]  # type: ignore[index]
        assert crashed["consecutive_failures"] >= 1  # type: ignore[index]
        assert crashed["healthy"] is False  # type: ignore[index]
    finally:
        os.rmdir(agent.state_file)

    agent.control_plane.heartbeat_answer = GOOD_HEARTBEAT
    wait_until(lambda: agent.status()["healthy"] is True, 20, "the loop running again")
    wait_until(agent.state_file.is_file, 10, "the state written again")
    status = agent.status()
    assert status["state"] == "running" and status["consecutive_failures"] == 0
    agent.control_plane.wait_for_heartbeats(1)


def test_a_huge_heartbeat_interval_is_clamped_to_an_hour(agent):
    agent.control_plane.heartbeat_answer = b'{"desired": null, "heartbeat_interval_s": 1e308}'

    wait_until(lambda: agent.status()["heartbeat_interval_s"] == 3600.0, 20, "the clamp")
