"""Who else uses the CPU: the benchmarks share a 2-core VM with other work."""

from __future__ import annotations

import os
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot; steal counts as busy."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal, sum(fields)


def _process_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _own_ticks() -> int:
    """This process's and its waited-for children's (wrk's) CPU time, in jiffies."""
    import resource

    used = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        used += usage.ru_utime + usage.ru_stime
    return round(used * CLOCK_TICKS)


class CpuMeter:
    """Splits the machine's CPU use over an interval into ours (host, wrk, this script) and
    everyone else's, in percent of one core, so noisy runs can be recognised."""

    def __init__(self, pids: tuple[int, ...] = ()) -> None:
        self._pids = pids
        self._start = self._sample()
        self._started = time.monotonic()

    def _sample(self) -> tuple[int, int, int]:
        busy, _ = _machine_ticks()
        return busy, sum(_process_ticks(pid) for pid in self._pids), _own_ticks()

    def stop(self) -> dict[str, float]:
        busy, tracked, own = (b - a for a, b in zip(self._start, self._sample(), strict=True))
        ticks_per_pct = (time.monotonic() - self._started) * CLOCK_TICKS / 100
        other = max(0, busy - tracked - own)
        return {
            "ours_pct": round((tracked + own) / ticks_per_pct, 1),
            "others_pct": round(other / ticks_per_pct, 1),
        }


def wait_for_quiet(max_wait_s: float | None = None, busy_below: float = 0.35) -> float:
    """Waits (bounded) until other processes leave the machine mostly idle for 2 s.

    Returns the busy fraction of the last 2 s window; other engineers' test runs on a
    shared 2-core VM otherwise halve the figures. ``$BENCH_QUIET_WAIT_S`` (default 30)
    bounds the wait; 0 skips it.
    """
    if max_wait_s is None:
        max_wait_s = float(os.environ.get("BENCH_QUIET_WAIT_S", "30"))
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0, total0 = _machine_ticks()
        time.sleep(2)
        busy1, total1 = _machine_ticks()
        fraction = (busy1 - busy0) / max(1, total1 - total0)
        if fraction < busy_below or time.monotonic() > deadline:
            if fraction >= busy_below:
                print(f"machine still {fraction:.0%} busy after {max_wait_s:.0f} s; measuring")
            return round(fraction, 2)
        print(f"machine {fraction:.0%} busy with other work; waiting…", flush=True)
