"""The rollout engine's judgement, as pure functions of what devices reported.

`classify` says where one device stands on the rollout's version; `judge` says what the
wave's tallies mean: halt, pass, or wait. The jobs feed them rows and apply the verdict,
so every rule here is tested without a database, and every verdict carries its numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from control_plane.rollouts.choices import FAILED_STATES, MemberState, OnTimeout

HEALTH_COUNTERS = (
    "requests",
    "errors",
    "traps",
    "deadline_hits",
    "memory_cap_hits",
    "ticks_failed",
)


@dataclass(frozen=True)
class Thresholds:
    soak_s: float
    wave_timeout_s: float
    on_timeout: str
    success_pct: float
    error_count: int
    error_pct: float
    max_traps: int
    max_error_pct: float
    min_requests: int

    @classmethod
    def of(cls, rollout: Any) -> Thresholds:
        return cls(**{name: getattr(rollout, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Observation:
    """What the control plane knows of one device, for the rollout's plugin and version."""

    state: str
    """The member's state so far (`MemberState`)."""
    installed_at: datetime | None
    last_seen: datetime | None
    running_version: str | None
    running_state: str | None
    failures: tuple[tuple[str, str], ...] = ()
    """(event kind, detail) of refusals, reverts and quarantines of the version."""
    health: dict[str, int] = field(default_factory=dict)
    """The version's counters since the wave started (current minus baseline)."""
    self_check: str = ""


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str = ""
    installed_at: datetime | None = None


def classify(
    seen: Observation, version: str, wave_started: datetime, now: datetime, limits: Thresholds
) -> Verdict:
    """Where one device of a running wave stands; failed and skipped are final."""
    if seen.state in (*FAILED_STATES, MemberState.SKIPPED):
        return Verdict(seen.state, installed_at=seen.installed_at)
    if seen.failures:
        # A revert says the most (the device is back on its previous version), so it wins
        # over the quarantine or trap that led to it.
        reverts = [detail for kind, detail in seen.failures if kind == "reverted"]
        if reverts:
            return Verdict(MemberState.REVERTED, f"reverted: {reverts[0]}"[:300], seen.installed_at)
        kind, detail = seen.failures[0]
        return Verdict(MemberState.FAILED, f"{kind}: {detail}"[:300], seen.installed_at)
    problem = health_problem(seen.health, seen.self_check, limits)
    if problem is not None:
        return Verdict(MemberState.FAILED, problem, seen.installed_at)
    runs = seen.running_version == version and seen.running_state == "running"
    if runs:
        installed_at = seen.installed_at or now
        soaked = now - installed_at >= timedelta(seconds=limits.soak_s)
        return Verdict(MemberState.HEALTHY if soaked else MemberState.INSTALLED, "", installed_at)
    if now - wave_started >= timedelta(seconds=limits.wave_timeout_s):
        if limits.on_timeout == OnTimeout.FAIL:
            return Verdict(MemberState.FAILED, _silent(seen, limits))
        return Verdict(MemberState.SKIPPED, _silent(seen, limits))
    heard = seen.last_seen is not None and seen.last_seen >= wave_started
    return Verdict(MemberState.DOWNLOADING if heard else MemberState.PENDING)


def health_problem(health: dict[str, int], self_check: str, limits: Thresholds) -> str | None:
    """Why these counters make a device failed on the version, or None."""
    if self_check == "failed":
        return "its self-check failed"
    traps = health.get("traps", 0)
    if traps > limits.max_traps:
        kinds = ", ".join(
            f"{health[k]} {k.replace('_', ' ')}"
            for k in ("deadline_hits", "memory_cap_hits")
            if health.get(k)
        )
        return f"{traps} traps (max {limits.max_traps})" + (f": {kinds}" if kinds else "")
    requests, errors = health.get("requests", 0), health.get("errors", 0)
    if requests >= limits.min_requests and errors * 100 > limits.max_error_pct * requests:
        return (
            f"{errors} errors in {requests} requests "
            f"({100 * errors / requests:.1f} %, max {limits.max_error_pct:g} %)"
        )
    return None


def _silent(seen: Observation, limits: Thresholds) -> str:
    when = seen.last_seen.isoformat(timespec="seconds") if seen.last_seen else "never"
    return f"no report within {limits.wave_timeout_s:g} s (last seen {when})"


class Outcome(Enum):
    WAIT = "wait"
    PASS = "pass"
    HALT = "halt"


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    detail: str
    counts: dict[str, int]


def judge(states: list[str], limits: Thresholds) -> Judgement:
    """The wave's verdict from its devices' states.

    Halts at ``error_count`` failed devices or ``error_pct`` of the wave; passes when every
    device is final or healthy and ``success_pct`` of those not skipped are healthy.
    """
    counts = Counter(states)
    tally = {state.value: counts.get(state.value, 0) for state in MemberState}
    size = len(states)
    failed = sum(counts.get(s, 0) for s in FAILED_STATES)
    skipped = counts.get(MemberState.SKIPPED, 0)
    healthy = counts.get(MemberState.HEALTHY, 0)
    if failed and (failed >= limits.error_count or failed * 100 >= limits.error_pct * size):
        return Judgement(
            Outcome.HALT,
            f"{failed} of {size} devices failed "
            f"(halts at {limits.error_count} devices or {limits.error_pct:g} %)",
            tally,
        )
    unsettled = size - failed - skipped - healthy
    counted = size - skipped
    if limits.success_pct == 0:  # a wave that gates nothing: an immediate assignment
        return Judgement(Outcome.PASS, f"{size} devices told to run it, without gates", tally)
    if unsettled == 0 and (counted == 0 or healthy * 100 >= limits.success_pct * counted):
        return Judgement(
            Outcome.PASS,
            f"{healthy} of {counted} devices healthy for {limits.soak_s:g} s "
            f"(needs {limits.success_pct:g} %); {skipped} skipped, {failed} failed",
            tally,
        )
    if unsettled == 0:
        return Judgement(
            Outcome.HALT,
            f"only {healthy} of {counted} devices healthy (needs {limits.success_pct:g} %)",
            tally,
        )
    return Judgement(Outcome.WAIT, f"{unsettled} of {size} devices not settled yet", tally)


def health_delta(current: dict[str, int], baseline: dict[str, int]) -> dict[str, int]:
    """Counters since the wave started: a version's sums minus what they were then."""
    return {k: max(0, current.get(k, 0) - baseline.get(k, 0)) for k in HEALTH_COUNTERS}
