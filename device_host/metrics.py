"""Counters and latency histograms, rendered in the Prometheus text format."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

Labels = tuple[tuple[str, str], ...]


class Histogram:
    """Cumulative-bucket latency histogram for one label set."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds
        self.count += 1


class Metrics:
    """A thread-safe registry of labelled counters, gauges and histograms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._histograms: dict[str, dict[Labels, Histogram]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            histogram = self._histograms[name].setdefault(key, Histogram())
            histogram.observe(seconds)

    def render(self, gauges: Iterable[tuple[str, Labels, float]] = ()) -> str:
        """The Prometheus exposition text, with point-in-time ``gauges`` appended."""
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                self._header(lines, name, "counter")
                lines += [
                    f"{name}{_labels(key)} {value:g}" for key, value in sorted(series.items())
                ]
            for name, histograms in sorted(self._histograms.items()):
                self._header(lines, name, "histogram")
                for key, histogram in sorted(histograms.items()):
                    running = 0
                    for bound, count in zip(histogram.buckets, histogram.counts, strict=False):
                        running += count
                        lines.append(
                            f"{name}_bucket{_labels((*key, ('le', f'{bound:g}')))} {running}"
                        )
                    lines.append(
                        f"{name}_bucket{_labels((*key, ('le', '+Inf')))} {histogram.count}"
                    )
                    lines.append(f"{name}_sum{_labels(key)} {histogram.total:.6f}")
                    lines.append(f"{name}_count{_labels(key)} {histogram.count}")
        seen: set[str] = set()
        for name, key, value in gauges:
            if name not in seen:
                self._header(lines, name, "gauge")
                seen.add(name)
            lines.append(f"{name}{_labels(key)} {value:g}")
        return "\n".join(lines) + "\n"

    def _header(self, lines: list[str], name: str, kind: str) -> None:
        kind, text = self._help.get(name, (kind, name.replace("_", " ")))
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def _labels(key: Labels) -> str:
    if not key:
        return ""
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in key
    )
    return "{" + ",".join(escaped) + "}"
