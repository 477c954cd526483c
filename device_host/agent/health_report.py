"""What a heartbeat tells the control plane beyond plugin states: health, vitals, log tail.

The agent takes a `Pending` report before each heartbeat and acknowledges it only once the
control plane stored it, so a heartbeat that failed loses nothing: the next one carries
the sum. Vitals go in the first heartbeat and then at most every `VITALS_EVERY_S`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from device_host.hardware import Dht22Sampler
from device_host.log_tail import TailBatch
from device_host.plugins.health import HealthBatch
from device_host.plugins.manager import PluginManager
from device_host.vitals import read_vitals
from fleet_common.wire.health import LogLine, PluginHealth, Vitals

VITALS_EVERY_S = 60.0


@dataclass(frozen=True)
class Pending:
    """One heartbeat's health, vitals and log lines, and what acknowledging them covers."""

    health: tuple[PluginHealth, ...]
    vitals: Vitals | None
    log_tail: tuple[LogLine, ...]
    batch: HealthBatch = dataclasses.field(repr=False)
    tail: TailBatch = dataclasses.field(repr=False)
    taken_at: float = 0.0


class HealthReporter:
    """Builds each heartbeat's health part from the plugin manager, the sensors and the OS."""

    def __init__(
        self,
        manager: PluginManager,
        samplers: Mapping[int, Dht22Sampler],
        state_dir: Path,
        control_plane_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._manager = manager
        self._samplers = samplers
        self._state_dir = state_dir
        self._control_plane_url = control_plane_url
        self._clock = clock
        self._vitals_acknowledged_at: float | None = None

    def pending(self) -> Pending:
        """Everything not yet acknowledged, bounded to what one heartbeat may carry."""
        now = self._clock()
        batch = self._manager.health.pending()
        tail = self._manager.log_tail.pending()
        last = self._vitals_acknowledged_at
        vitals = None
        if last is None or now - last >= VITALS_EVERY_S:
            vitals = read_vitals(self._state_dir, self._control_plane_url)
        health = tuple(self._with_sensor_age(entry) for entry in batch.entries)
        return Pending(health, vitals, tail.lines, batch, tail, now)

    def acknowledge(self, sent: Pending) -> None:
        """The control plane stored ``sent``: the next heartbeat carries only what came after."""
        self._manager.health.acknowledge(sent.batch)
        self._manager.log_tail.acknowledge(sent.tail)
        if sent.vitals is not None:
            self._vitals_acknowledged_at = sent.taken_at

    def _with_sensor_age(self, entry: PluginHealth) -> PluginHealth:
        """``entry`` with the age of the freshest reading of a sensor its version is granted."""
        slot = self._manager.slot(entry.plugin)
        version = slot.version if slot is not None else None
        if version is None or version.manifest.version != entry.version:
            return entry
        now = time.time()
        ages = [
            age
            for pin in sorted(version.manifest.capabilities.dht22_pins)
            if pin in self._samplers
            and (age := self._samplers[pin].snapshot().age_s(now)) is not None
        ]
        if not ages:
            return entry
        return dataclasses.replace(entry, sensor_age_s=round(min(ages), 1))
