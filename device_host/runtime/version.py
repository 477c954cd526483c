"""A loaded plugin version: compiled, checked against the contract, linked and self-checked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import wasmtime

from device_host.contract import check_component
from device_host.contract.interfaces import SELF_CHECK, compatibility_key
from device_host.errors import PluginLoadError, PluginTrap
from device_host.manifest import Manifest
from device_host.runtime.artifacts import ArtifactCache
from device_host.runtime.exports import EXPORT_OF_WORLD, self_check
from device_host.runtime.guest_log import GuestLog
from device_host.runtime.host_functions import HostServices
from device_host.runtime.instance import PluginInstance
from device_host.runtime.linking import build_linker
from device_host.runtime.memory import Span
from device_host.runtime.pool import InstancePool
from device_host.storage.kv import KvStores

T = TypeVar("T")

QUEUE_WAIT_S = 10.0
"""How long a call may wait for a free instance before the host answers 503."""


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
        from_cache: bool,
        exports: dict[str, str],
        pool: InstancePool,
        new_instance: Callable[[], PluginInstance],
        load_seconds: float,
    ) -> None:
        self.manifest = manifest
        self.sha256 = sha256
        self.size = size
        self.from_cache = from_cache
        self.load_seconds = load_seconds
        self._exports = exports
        self._pool = pool
        self.new_instance = new_instance
        """Creates an instance outside the pool (0.5 ms); the caller closes it."""

    @property
    def entry_interface(self) -> str:
        """The component's name for the interface its world exports."""
        return self._exports[compatibility_key(EXPORT_OF_WORLD[self.manifest.world])]

    @property
    def live_instances(self) -> int:
        return self._pool.live_instances

    def memory_spans(self) -> list[Span]:
        """The linear-memory reservations of this version's live instances."""
        return [i.memory_span for i in self._pool.instances() if i.memory_span is not None]

    def run(self, work: Callable[[PluginInstance], T]) -> T:
        """Runs ``work`` on one of this version's instances; raises `PluginTrap` on a trap."""
        return self._pool.run(work)

    def retire(self) -> None:
        """Stops lending instances; calls in progress finish on the ones they hold."""
        self._pool.retire()


def load_version(
    context: LoadContext, manifest: Manifest, wasm_path: Path, guest_log: GuestLog
) -> LoadedVersion:
    """Compiles (or loads from cache), checks, links, instantiates and self-checks a version.

    Any failure raises `PluginLoadError` naming the plugin, the version and the reason.
    """
    started = time.monotonic()
    compiled = context.artifacts.load(wasm_path, plugin=manifest.name, version=manifest.version)
    exports = check_component(context.engine, compiled.component, manifest)
    linker = build_linker(context.engine, manifest, context.services, guest_log, context.kv_stores)

    def new_instance() -> PluginInstance:
        return PluginInstance(context.engine, linker, compiled.component, manifest, guest_log)

    first = new_instance()
    check_interface = exports.get(compatibility_key(SELF_CHECK))
    if check_interface is not None:
        try:
            failure = self_check(first, check_interface, manifest.limits.call_timeout_ms)
        except PluginTrap as trap:
            failure = f"trapped ({trap.kind}): {trap.detail}"
        if failure is not None:
            first.close()
            raise PluginLoadError(manifest.name, manifest.version, f"self-check failed: {failure}")
    wait_s = max(QUEUE_WAIT_S, manifest.limits.call_timeout_ms / 1000 * 4)
    pool = InstancePool(new_instance, context.pool_size, wait_s)
    pool.seed(first)
    return LoadedVersion(
        manifest=manifest,
        sha256=compiled.sha256,
        size=compiled.size,
        from_cache=compiled.from_cache,
        exports=exports,
        pool=pool,
        new_instance=new_instance,
        load_seconds=time.monotonic() - started,
    )
