"""A loaded plugin version: compiled, checked against the contract, linked and self-checked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from device_host.errors import NoSensorReading, PluginTrap, SelfCheckFailed
from device_host.runtime._artifacts import ArtifactCache, Delivered, LoadHow
from device_host.runtime._exports import (
    DemoReading,
    HttpRequest,
    HttpResponse,
    demo_poll,
    demo_render,
    handle_http,
    self_check,
    tick,
)
from device_host.runtime._guest_log import GuestLog
from device_host.runtime._host_functions import HostServices
from device_host.runtime._instance import PluginInstance
from device_host.runtime._linking import build_linker
from device_host.runtime._memory import Span
from device_host.runtime._pool import InstancePool
from device_host.runtime._validate import check_component
from device_host.storage.kv import KvStores
from fleet_common.contract.interfaces import SELF_CHECK, compatibility_key
from fleet_common.contract.worlds import WORLDS, Drive, World
from fleet_common.manifest import Manifest
from fleet_common.wire.health import SELF_CHECK_PASSED

QUEUE_WAIT_S = 10.0
"""How long a call may wait for a free instance before the host answers 503."""


@dataclass(frozen=True)
class PeriodicOutcome:
    """What one scheduled call returned: the plugin's error, and any readings it reported."""

    error: str | None
    readings: list[DemoReading]


Reading = tuple[float, float]
"""Temperature (°C) and relative humidity (%) for the original demo's ``render``."""


@dataclass(frozen=True)
class LoadContext:
    """What loading needs from the runtime; built once per process."""

    engine: wasmtime.Engine
    artifacts: ArtifactCache
    services: HostServices
    kv_stores: KvStores
    pool_size: int


class LoadedVersion:
    """One version of a plugin ready to take calls through its instance pool."""

    def __init__(
        self,
        manifest: Manifest,
        sha256: str,
        size: int,
        how: LoadHow,
        exports: dict[str, str],
        pool: InstancePool,
        new_instance: Callable[[], PluginInstance],
        load_seconds: float,
        self_check: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.sha256 = sha256
        self.size = size
        self.how = how
        self.load_seconds = load_seconds
        self.self_check = self_check
        """``passed`` when the version exports a self-check (it ran at load); else None."""
        self._exports = exports
        self._pool = pool
        self.new_instance = new_instance
        """Creates an instance outside the pool (0.5 ms); the caller closes it."""

    @property
    def world(self) -> World:
        return WORLDS[self.manifest.world]

    @property
    def entry_interface(self) -> str:
        """The component's name for the interface its world exports."""
        return self._exports[compatibility_key(self.world.entry)]

    @property
    def period_s(self) -> float:
        """How often a periodic world's plugin is called."""
        return self.world.fixed_period_s or float(self.manifest.limits.tick_interval_s)

    def respond(self, request: HttpRequest, reading: Callable[[], Reading | None]) -> HttpResponse:
        """Answers a page request in the world's own way; raises `PluginTrap` on a trap.

        ``reading`` supplies what the original demo's dashboards render; it is asked only for
        them, and `NoSensorReading` says there is none.
        """
        entry = self.entry_interface
        if self.world.drive is Drive.HTTP:
            return self._pool.run(lambda instance: handle_http(instance, entry, request))
        if self.world.drive is not Drive.RENDER:
            raise TypeError(f"world {self.world.name} serves no pages")
        current = reading()
        if current is None:
            raise NoSensorReading("the sensor has no current reading")
        return self._pool.run(lambda instance: demo_render(instance, entry, *current))

    def run_periodic(self, now_ms: int) -> PeriodicOutcome:
        """One scheduled call: an automation tick or a demo sensor poll."""
        entry = self.entry_interface
        if self.world.drive is Drive.TICK:
            error = self._pool.run(lambda instance: tick(instance, entry, now_ms))
            return PeriodicOutcome(error, [])
        if self.world.drive is not Drive.POLL:
            raise TypeError(f"world {self.world.name} is not periodic")
        return PeriodicOutcome(None, self._pool.run(lambda instance: demo_poll(instance, entry)))

    @property
    def pool_size(self) -> int:
        """How many calls this version runs at once."""
        return self._pool.size

    @property
    def live_instances(self) -> int:
        return self._pool.live_instances

    def memory_spans(self) -> list[Span]:
        """The linear-memory reservations of this version's live instances."""
        return [span for instance in self._pool.instances() for span in instance.memory_spans]

    def demote(self) -> None:
        """A newer version serves now: calls waiting for an instance here go to it."""
        self._pool.redirect_waiters()

    def retire(self) -> None:
        """Stops lending instances; calls in progress finish on the ones they hold."""
        self._pool.retire()


MIN_INSTANCE_MIB = 24
"""What one componentize-py instance needs: 12.3 MiB at start, and room to work."""


def instance_plan(memory_mib: int, pool_size: int) -> tuple[int, int]:
    """How many instances a version runs, and each one's share of the plugin's memory cap.

    ``memory-mib`` caps the plugin as a whole: its instances split it, so a plugin with a
    small cap runs fewer instances instead of more memory.
    """
    count = max(1, min(pool_size, memory_mib // MIN_INSTANCE_MIB))
    return count, memory_mib // count


def load_version(
    context: LoadContext, manifest: Manifest, source: Path | Delivered, guest_log: GuestLog
) -> LoadedVersion:
    """Loads, checks, links, instantiates and self-checks a version.

    ``source`` is a component file (compiled here unless the cache has it) or an artifact
    delivered for this engine. Any failure raises `PluginLoadError` naming the plugin, the
    version and the reason.
    """
    started = time.monotonic()
    name, memory_mib = manifest.name, manifest.limits.memory_mib
    if isinstance(source, Delivered):
        compiled = context.artifacts.load_delivered(
            source.sha256,
            source.size,
            source.footprint,
            plugin=name,
            version=manifest.version,
            memory_mib=memory_mib,
        )
    else:
        compiled = context.artifacts.load(
            source, plugin=name, version=manifest.version, memory_mib=memory_mib
        )
    exports = check_component(context.engine, compiled.component, manifest)
    linker = build_linker(context.engine, manifest, context.services, guest_log, context.kv_stores)

    instances, memory_mib = instance_plan(manifest.limits.memory_mib, context.pool_size)

    def new_instance() -> PluginInstance:
        return PluginInstance(
            context.engine, linker, compiled.component, manifest, guest_log, memory_mib
        )

    first = new_instance()
    check_interface = exports.get(compatibility_key(SELF_CHECK))
    if check_interface is not None:
        try:
            failure = self_check(first, check_interface, manifest.limits.call_timeout_ms)
        except PluginTrap as trap:
            failure = f"trapped ({trap.kind}): {trap.detail}"
        if failure is not None:
            first.close()
            raise SelfCheckFailed(manifest.name, manifest.version, f"self-check failed: {failure}")
    wait_s = max(QUEUE_WAIT_S, manifest.limits.call_timeout_ms / 1000 * 4)
    pool = InstancePool(new_instance, instances, wait_s)
    pool.seed(first)
    return LoadedVersion(
        manifest=manifest,
        sha256=compiled.sha256,
        size=compiled.size,
        how=compiled.how,
        exports=exports,
        pool=pool,
        new_instance=new_instance,
        load_seconds=time.monotonic() - started,
        self_check=None if check_interface is None else SELF_CHECK_PASSED,
    )
