"""Line charts as inline SVG geometry, computed on the server: readings, rollout timelines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from control_plane.devices.models import Reading

WIDTH = 640
HEIGHT = 180
PAD_LEFT = 44
PAD_RIGHT = 8
PAD_TOP = 10
PAD_BOTTOM = 22
COLORS = ("#7dd3fc", "#fbbf24", "#a7f3d0", "#f9a8d4")


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: str


@dataclass(frozen=True)
class Marker:
    """A labelled moment on the time axis (a wave started, a halt)."""

    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    """Everything the template needs to draw one chart; ``series`` is empty with no data."""

    title: str
    unit: str
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    latest: str
    markers: list[Marker] = field(default_factory=list)

    @property
    def plot_left(self) -> int:
        return PAD_LEFT

    @property
    def plot_right(self) -> int:
        return self.width - PAD_RIGHT

    @property
    def plot_top(self) -> int:
        return PAD_TOP

    @property
    def plot_bottom(self) -> int:
        return self.height - PAD_BOTTOM

    @property
    def center_x(self) -> int:
        return (PAD_LEFT + self.width - PAD_RIGHT) // 2

    @property
    def center_y(self) -> int:
        return (PAD_TOP + self.height - PAD_BOTTOM) // 2


def reading_chart(title: str, unit: str, readings: Sequence[Reading], attribute: str) -> Chart:
    """Plots ``attribute`` of each reading over time, one line per source (one sensor)."""
    by_source: dict[str, list[tuple[datetime, float]]] = {}
    for reading in readings:
        by_source.setdefault(reading.source, []).append(
            (reading.taken_at, float(getattr(reading, attribute)))
        )
    return line_chart(title, unit, dict(sorted(by_source.items())), empty="no readings yet")


def line_chart(
    title: str,
    unit: str,
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    *,
    empty: str,
    markers: Sequence[tuple[datetime, str]] = (),
    counts: bool = False,
    colors: Mapping[str, str] | None = None,
    caption: str | None = None,
) -> Chart:
    """Plots each named series of (time, value) samples on one time axis, in the order of
    ``series``; ``markers`` are labelled moments (vertical lines). ``counts`` starts the
    axis at 0 with whole-number ticks; ``colors`` picks a series' colour by name (red for
    failures); ``caption`` replaces "latest value at time"."""
    floor = 0.0 if counts else None
    samples = [(moment, value) for points in series.values() for moment, value in points]
    if not samples:
        return Chart(title, unit, WIDTH, HEIGHT, [], [], [], empty)
    low = min(value for _, value in samples) if floor is None else floor
    high = max(value for _, value in samples)
    if high - low < 1.0:
        middle = (high + low) / 2
        low, high = (middle - 0.5, middle + 0.5) if floor is None else (floor, floor + 1.0)
    moments = [moment for moment, _ in samples] + [moment for moment, _ in markers]
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return PAD_LEFT + (moment - start).total_seconds() / span * (WIDTH - PAD_LEFT - PAD_RIGHT)

    def y(value: float) -> float:
        return PAD_TOP + (high - value) / (high - low) * (HEIGHT - PAD_TOP - PAD_BOTTOM)

    lines = [
        Series(
            name=name,
            color=(colors or {}).get(name, COLORS[index % len(COLORS)]),
            points=" ".join(f"{x(moment):.1f},{y(value):.1f}" for moment, value in points),
        )
        for index, (name, points) in enumerate(series.items())
        if points
    ]
    levels: tuple[float, ...] = (high, (high + low) / 2, low)
    if counts:
        levels = tuple(sorted({float(round(level)) for level in levels}, reverse=True))
    y_ticks = [(y(value), f"{value:.0f}" if counts else f"{value:.1f}") for value in levels]
    x_ticks = [(x(start), _clock(start)), (x(end), _clock(end))]
    last_moment, last_value = max(samples, key=lambda sample: sample[0])
    latest = caption or f"{last_value:.1f} {unit} at {_clock(last_moment)}"
    return Chart(
        title,
        unit,
        WIDTH,
        HEIGHT,
        lines,
        y_ticks,
        x_ticks,
        latest,
        [Marker(x(moment), label) for moment, label in markers],
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")
