"""Back-off for plugins that keep crashing: after repeated traps, refuse calls for a while."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class QuarantinePolicy:
    """``max_traps`` traps within ``window_s`` quarantine a plugin; each relapse doubles it."""

    max_traps: int = 3
    window_s: float = 60.0
    base_backoff_s: float = 10.0
    max_backoff_s: float = 300.0
    forgive_after_s: float = 600.0
    probation_s: float = 60.0
    """How long a replaced version stays warm to answer for a new one that traps."""


class Quarantine:
    """Tracks one plugin's recent traps; not thread-safe, its slot holds the lock."""

    def __init__(self, policy: QuarantinePolicy) -> None:
        self._policy = policy
        self._traps: deque[float] = deque()
        self._until = 0.0
        self._backoff_s = policy.base_backoff_s
        self._last_release = 0.0
        self.times_quarantined = 0

    def record_trap(self, now: float) -> bool:
        """Notes a trap at ``now``; returns True when it puts the plugin into quarantine."""
        policy = self._policy
        if self._last_release and now - self._last_release > policy.forgive_after_s:
            self._backoff_s = policy.base_backoff_s
        self._traps.append(now)
        while self._traps and now - self._traps[0] > policy.window_s:
            self._traps.popleft()
        if len(self._traps) < policy.max_traps or self.active(now):
            return False
        self._until = now + self._backoff_s
        self._last_release = self._until
        self._backoff_s = min(self._backoff_s * 2, policy.max_backoff_s)
        self._traps.clear()
        self.times_quarantined += 1
        return True

    def active(self, now: float) -> bool:
        return now < self._until

    def remaining_s(self, now: float) -> float:
        return max(0.0, self._until - now)

    def reset(self) -> None:
        """A new version starts with a clean record."""
        self._traps.clear()
        self._until = 0.0
        self._backoff_s = self._policy.base_backoff_s
        self._last_release = 0.0
