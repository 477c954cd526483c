"""Line charts as inline SVG geometry, computed on the server from recent readings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

    @property
    def plot_left(self) -> int:
        return PAD_LEFT

    @property
    def plot_right(self) -> int:
        return self.width - PAD_RIGHT

    @property
    def center_x(self) -> int:
        return (PAD_LEFT + self.width - PAD_RIGHT) // 2

    @property
    def center_y(self) -> int:
        return (PAD_TOP + self.height - PAD_BOTTOM) // 2


def reading_chart(title: str, unit: str, readings: Sequence[Reading], attribute: str) -> Chart:
    """Plots ``attribute`` of each reading over time, one line per source."""
    samples = [(r.source, r.taken_at, float(getattr(r, attribute))) for r in readings]
    if not samples:
        return Chart(title, unit, WIDTH, HEIGHT, [], [], [], "no readings yet")
    low = min(value for _, _, value in samples)
    high = max(value for _, _, value in samples)
    if high - low < 1.0:
        middle = (high + low) / 2
        low, high = middle - 0.5, middle + 0.5
    start = min(moment for _, moment, _ in samples)
    end = max(moment for _, moment, _ in samples)
    span = max((end - start).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return PAD_LEFT + (moment - start).total_seconds() / span * (WIDTH - PAD_LEFT - PAD_RIGHT)

    def y(value: float) -> float:
        return PAD_TOP + (high - value) / (high - low) * (HEIGHT - PAD_TOP - PAD_BOTTOM)

    sources = sorted({source for source, _, _ in samples})
    series = [
        Series(
            name=source,
            color=COLORS[index % len(COLORS)],
            points=" ".join(
                f"{x(moment):.1f},{y(value):.1f}" for s, moment, value in samples if s == source
            ),
        )
        for index, source in enumerate(sources)
    ]
    y_ticks = [(y(value), f"{value:.1f}") for value in (high, (high + low) / 2, low)]
    x_ticks = [(x(start), _clock(start)), (x(end), _clock(end))]
    latest = f"{samples[-1][2]:.1f} {unit} at {_clock(samples[-1][1])}"
    return Chart(title, unit, WIDTH, HEIGHT, series, y_ticks, x_ticks, latest)


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")
