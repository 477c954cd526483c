"""The host's Prometheus metrics, on prometheus-client, every family declared here once.

Counters and histograms live in a private registry per host (tests run several hosts in one
process). Point-in-time gauges (plugin state, memory, sensor age) are computed when
``/metrics`` is scraped, by a collector the handler passes to ``exposition``; their names,
help and labels are declared here too, so one table documents everything ``/metrics`` says.

``_created`` series are switched off (process-wide): they would double every counter and
histogram in each scrape a Pi sends, and the text format's consumers ignore them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Family:
    help: str
    labels: tuple[str, ...] = ()


COUNTERS = {
    "http_requests_total": Family(
        "HTTP requests answered, by route and status", ("route", "status")
    ),
    "plugin_traps_total": Family(
        "Calls into a plugin that were stopped, by kind", ("kind", "plugin")
    ),
    "plugin_fallbacks_total": Family(
        "Requests a version in probation trapped on, answered by the version it replaced",
        ("plugin",),
    ),
    "plugin_errors_total": Family(
        "Plugin faults the host caught outside a call (e.g. a status outside 200-599), by kind",
        ("kind", "plugin"),
    ),
    "plugin_headers_dropped_total": Family(
        "Response headers a plugin set that the host did not send (not allowed or invalid)",
        ("plugin",),
    ),
    "http_connections_closed_total": Family(
        "Connections the host closed or refused to protect :3000, by reason "
        "(header-timeout, body-timeout, evicted, refused)",
        ("reason",),
    ),
    "plugin_loads_total": Family(
        "Plugin versions loaded, by where their machine code came from (delivered: compiled "
        "and signed by the control plane; cached: an earlier compile here; compiled: now, here)",
        ("how",),
    ),
    "plugin_readings_refused_total": Family(
        "Readings a sensor plugin reported that the host refused, by reason", ("plugin", "reason")
    ),
}
HISTOGRAMS = {
    "http_request_seconds": Family("Time to answer an HTTP request, by route", ("route",)),
    "plugin_call_seconds": Family("Time of one call into a plugin", ("plugin",)),
}
GAUGES = {
    "plugin_up": Family("1 while the plugin is running, 0 otherwise", ("plugin",)),
    "plugin_instances": Family("Live instances of the plugin's current version", ("plugin",)),
    "plugin_memory_limit_bytes": Family("The plugin's memory cap (memory-mib)", ("plugin",)),
    "plugin_memory_bytes": Family("Resident memory of the plugin's instances", ("plugin",)),
    "sensor_reading_age_seconds": Family("Age of the sensor's last good reading", ("pin",)),
    "process_rss_bytes": Family("Resident set size of the host process"),
    "process_pss_bytes": Family("Proportional set size of the host process (shared pages split)"),
}
"""Label names are in alphabetical order, the order they appear in on each line."""


class Metrics:
    """One host's counters and latency histograms; thread-safe, as prometheus-client is."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry()
        self._counters = {
            name: Counter(name, f.help, f.labels, registry=self._registry)
            for name, f in COUNTERS.items()
        }
        self._histograms = {
            name: Histogram(
                name, f.help, f.labels, registry=self._registry, buckets=LATENCY_BUCKETS_S
            )
            for name, f in HISTOGRAMS.items()
        }

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Adds to a counter declared in COUNTERS; a name or label it lacks is a KeyError or
        ValueError (a bug in the caller, never plugin input)."""
        self._counters[name].labels(**labels).inc(amount)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        """Records a duration in a histogram declared in HISTOGRAMS."""
        self._histograms[name].labels(**labels).observe(seconds)

    def forget_plugin(self, plugin: str) -> None:
        """Drops every series labelled with a removed plugin, so a device that has seen many
        plugins come and go does not report them for ever."""
        for family, metric in (*COUNTERS.items(), *HISTOGRAMS.items()):
            if "plugin" in metric.labels:
                self._metric(family).remove_by_labels({"plugin": plugin})

    def _metric(self, name: str) -> Counter | Histogram:
        return self._counters.get(name) or self._histograms[name]

    def exposition(self, *point_in_time: Collector) -> bytes:
        """The Prometheus text format of every counter and histogram, then what the
        ``point_in_time`` collectors yield (each built for this one scrape)."""
        return generate_latest(_Chain((self._registry, *point_in_time)))


def gauge(name: str) -> GaugeMetricFamily:
    """An empty family for a gauge declared in GAUGES, for a collector to fill."""
    family = GAUGES[name]
    return GaugeMetricFamily(name, family.help, labels=family.labels)


@dataclass(frozen=True)
class _Chain:
    collectors: Iterable[Collector]

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()
