"""Conditional heartbeats: the device names what it has, an unchanged answer changes nothing
on its disk, and a control plane that says "slow down" is obeyed."""

from __future__ import annotations

import json
import time

from tests.agent.conftest import GOOD_HEARTBEAT, AgentUnderTest
from tests.support import wait_until


def _accept_new_desired_state(agent: AgentUnderTest) -> int:
    sequence, agent.control_plane.heartbeat_answer = agent.desired_answer()
    wait_until(lambda: agent.status()["desired_sequence"] == sequence, 20, "the new state")
    agent.control_plane.heartbeat_answer = GOOD_HEARTBEAT
    return sequence


def _last_heartbeat(agent: AgentUnderTest) -> dict[str, object]:
    body = json.loads(agent.control_plane.heartbeat_bodies[-1])
    assert isinstance(body, dict)
    return body


def _heartbeat_problem(agent: AgentUnderTest) -> str:
    problems = agent.status()["problems"]
    assert isinstance(problems, dict)
    return str(problems.get("heartbeat", {}).get("message", ""))


def test_each_heartbeat_names_the_accepted_desired_sequence(agent):
    sequence = _accept_new_desired_state(agent)

    agent.control_plane.wait_for_heartbeats(1)

    assert _last_heartbeat(agent)["desired_sequence"] == sequence


def test_an_unchanged_answer_does_not_rewrite_the_state_file(agent):
    _accept_new_desired_state(agent)
    agent.control_plane.wait_for_heartbeats(1)
    before = agent.state_file.stat()
    writes = agent.status()["state_writes"]

    agent.control_plane.wait_for_heartbeats(3)

    after = agent.state_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert agent.status()["state_writes"] == writes


def test_a_429_is_waited_out_for_its_retry_after_and_named_once(agent):
    agent.control_plane.wait_for_heartbeats(1)
    refusal = (429, b'{"error": "too many readings this hour"}', {"Retry-After": "4"})
    agent.control_plane.heartbeat_refusal = refusal
    try:
        wait_until(lambda: "rate limited" in _heartbeat_problem(agent), 20, "the 429 named")
        # The agent now waits out the Retry-After, so the last heartbeat is the refused one.
        refused_at = agent.control_plane.heartbeats[-1][0]
        problem = _heartbeat_problem(agent)
        agent.control_plane.heartbeat_refusal = None
        agent.control_plane.wait_for_heartbeats(1)
    finally:
        agent.control_plane.heartbeat_refusal = None

    assert "rate limited, waiting 4 s" in problem
    assert agent.control_plane.heartbeats[-1][0] - refused_at >= 3.9


def test_rejected_readings_are_a_condition_naming_the_problem(agent):
    agent.control_plane.heartbeat_answer = (
        b'{"heartbeat_interval_s": 1, "rejected_readings": '
        b'{"count": 2, "problem": "readings[0].taken_at is 2100-01-01, in the future"}}'
    )
    try:
        wait_until(lambda: "readings" in agent.status()["problems"], 20, "the condition")
    finally:
        agent.control_plane.heartbeat_answer = GOOD_HEARTBEAT
    problem = agent.status()["problems"]["readings"]  # type: ignore[index]

    assert "refused 2 reading(s): readings[0].taken_at is 2100-01-01" in problem["message"]
    wait_until(lambda: "readings" not in agent.status()["problems"], 20, "the condition cleared")


def test_an_answer_without_desired_keeps_the_accepted_state(agent):
    sequence = _accept_new_desired_state(agent)
    agent.control_plane.heartbeat_answer = b'{"heartbeat_interval_s": 1}'
    try:
        agent.control_plane.wait_for_heartbeats(2)
    finally:
        agent.control_plane.heartbeat_answer = GOOD_HEARTBEAT

    status = agent.status()
    assert (status["desired_sequence"], status["accepted_sequence"]) == (sequence, sequence)
    assert "heartbeat" not in status["problems"]  # type: ignore[operator]
    time.sleep(0)
