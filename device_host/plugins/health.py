"""What each plugin version did since the control plane last acknowledged a heartbeat.

Slots record every call here under the version that ran it; the agent takes the changed
versions into a heartbeat (`pending`) and subtracts exactly what it sent once the control
plane acknowledged it (`acknowledge`). Calls made meanwhile, or a heartbeat that failed,
stay for the next one: nothing is lost and nothing counted twice.

Latency lives in a sparse log-scale histogram (about 9 % wide buckets), not a list of
samples, so it is bounded per version and can be subtracted like the counters.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field

from device_host.errors import TrapKind
from fleet_common.wire.health import MAX_HEALTH, SELF_CHECK_FAILED, PluginHealth

BUCKETS_PER_DOUBLING = 8
_FLOOR_MS = 0.01
_LAST_BUCKET = BUCKETS_PER_DOUBLING * 24
"""0.01 ms * 2**24 is about 168 s: every call ends long before (deadlines are seconds)."""
_DEADLINE_KINDS = (TrapKind.TIMEOUT, TrapKind.BLOCKING_CALL)

VersionKey = tuple[str, str]
"""(plugin, version)."""


@dataclass
class _Tally:
    """Counters of one version, added to by calls and subtracted from by acknowledgements."""

    requests: int = 0
    errors: int = 0
    traps: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    ticks_failed: int = 0
    latency: Counter[int] = field(default_factory=Counter)
    """Histogram bucket to calls; see `_bucket`."""
    self_check: str | None = None
    announce: bool = False
    """Sent once even unchanged: the version just started serving, or failed its self-check."""

    @property
    def changed(self) -> bool:
        return bool(self.requests or self.fallbacks or +self.traps)

    def copy(self) -> _Tally:
        return _Tally(
            self.requests,
            self.errors,
            Counter(self.traps),
            self.fallbacks,
            self.ticks_failed,
            Counter(self.latency),
            self.self_check,
            self.announce,
        )

    def subtract(self, sent: _Tally) -> None:
        self.requests -= sent.requests
        self.errors -= sent.errors
        self.traps.subtract(sent.traps)
        self.traps = +self.traps
        self.fallbacks -= sent.fallbacks
        self.ticks_failed -= sent.ticks_failed
        self.latency.subtract(sent.latency)
        self.latency = +self.latency
        self.announce = self.announce and not sent.announce

    def to_wire(self, plugin: str, version: str) -> PluginHealth:
        return PluginHealth(
            plugin=plugin,
            version=version,
            requests=self.requests,
            errors=self.errors,
            traps=dict(sorted(self.traps.items())),
            deadline_hits=sum(self.traps[kind] for kind in _DEADLINE_KINDS),
            memory_cap_hits=self.traps[TrapKind.OUT_OF_MEMORY],
            fallbacks=self.fallbacks,
            ticks_failed=self.ticks_failed,
            self_check=self.self_check,
            p50_ms=_percentile(self.latency, 0.50),
            p99_ms=_percentile(self.latency, 0.99),
        )


@dataclass(frozen=True)
class HealthBatch:
    """What one heartbeat carries, and what acknowledging it subtracts."""

    entries: tuple[PluginHealth, ...]
    taken: dict[VersionKey, _Tally] = field(repr=False)


class HealthLedger:
    """Per plugin version tallies for one host; thread-safe (slots record from many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[VersionKey, _Tally] = {}

    def serving(self, plugin: str, version: str, self_check: str | None) -> None:
        """A version started serving: the next heartbeat names it, with its self-check."""
        with self._lock:
            tally = self._tallies.setdefault((plugin, version), _Tally())
            tally.self_check, tally.announce = self_check, True

    def self_check_failed(self, plugin: str, version: str) -> None:
        """A version was refused for its self-check: the next heartbeat says so."""
        self.serving(plugin, version, SELF_CHECK_FAILED)

    def record(
        self,
        plugin: str,
        version: str,
        *,
        seconds: float,
        failed: bool,
        trap: TrapKind | None = None,
        tick: bool = False,
        self_check: str | None = None,
    ) -> None:
        """One call that ran on ``version``: how long it took and how it ended."""
        with self._lock:
            tally = self._tallies.setdefault((plugin, version), _Tally())
            tally.self_check = self_check or tally.self_check
            tally.requests += 1
            tally.latency[_bucket(seconds * 1000)] += 1
            if failed or trap is not None:
                tally.errors += 1
                tally.ticks_failed += 1 if tick else 0
            if trap is not None:
                tally.traps[str(trap)] += 1

    def fallback(self, plugin: str, version: str) -> None:
        """``version`` trapped in probation and its predecessor answered for it."""
        with self._lock:
            self._tallies.setdefault((plugin, version), _Tally()).fallbacks += 1

    def pending(self, limit: int = MAX_HEALTH) -> HealthBatch:
        """The versions that changed (or must be announced) since the last acknowledgement."""
        with self._lock:
            taken = {
                key: tally.copy()
                for key, tally in sorted(self._tallies.items())
                if tally.changed or tally.announce
            }
        taken = dict(list(taken.items())[:limit])
        entries = tuple(tally.to_wire(*key) for key, tally in taken.items())
        return HealthBatch(entries, taken)

    def acknowledge(self, batch: HealthBatch) -> None:
        """The control plane stored ``batch``: subtract it, and forget versions left idle."""
        with self._lock:
            for key, sent in batch.taken.items():
                tally = self._tallies.get(key)
                if tally is None:
                    continue
                tally.subtract(sent)
                if not (tally.changed or tally.announce):
                    del self._tallies[key]


def _bucket(ms: float) -> int:
    """The histogram bucket of a duration: bucket ``i`` ends at 0.01 ms * 2**(i/8)."""
    if ms <= _FLOOR_MS:
        return 0
    return min(_LAST_BUCKET, math.ceil(math.log2(ms / _FLOOR_MS) * BUCKETS_PER_DOUBLING))


def _percentile(latency: Counter[int], q: float) -> float | None:
    """The upper end of the bucket holding quantile ``q``, in ms (at most 9 % high)."""
    total = sum(latency.values())
    if not total:
        return None
    rank, seen, buckets = math.ceil(q * total), 0, sorted(latency)
    for bucket in buckets:
        seen += latency[bucket]
        if seen >= rank:
            break
    return round(_FLOOR_MS * 2 ** (bucket / BUCKETS_PER_DOUBLING), 3)
