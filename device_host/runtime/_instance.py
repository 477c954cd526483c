"""One Store holding one instance of a plugin version, used by one thread at a time.

A Store is not thread-safe, so each instance has a lock; parallelism comes from having
several instances. After any trap the Store is dead and the instance is thrown away.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime.component import Component, Func, Instance, Linker

from device_host.errors import PluginTrap, TrapKind
from device_host.runtime._artifacts import footprint_of
from device_host.runtime._calls import classify_failure
from device_host.runtime._engine import deadline_ticks
from device_host.runtime._guest_log import GuestLog, StreamLines
from device_host.runtime._invoke import LoweredArgs, Signature, invoke
from device_host.runtime._memory import ReservationWatch, Span, give_back_heap
from device_host.runtime._wasi import wasi_config
from fleet_common.errors import PluginLoadError
from fleet_common.limits import store_limits
from fleet_common.manifest import Manifest

INSTANTIATE_BUDGET_MS = 2000
DEFAULT_MAX_OUTPUT_BYTES = 64 << 10
"""What a call may return unless its caller allows more (a page allows megabytes)."""
WASM_PAGE = 64 * 1024


@dataclass(frozen=True)
class ExportRef:
    """An exported function: its interface as the component spells it, and its name."""

    interface: str
    function: str


class PluginInstance:
    """A live instance; `call` runs one export under the manifest's time budget."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        linker: Linker,
        component: Component,
        manifest: Manifest,
        guest_log: GuestLog,
        memory_mib: int | None = None,
    ) -> None:
        """``memory_mib`` is this instance's share of the plugin's cap (default: all of it)."""
        self._manifest = manifest
        self.label = manifest.label
        self._lock = threading.Lock()
        self._funcs: dict[ExportRef, tuple[Func, Signature]] = {}
        self._stderr = StreamLines(guest_log, "warning", "stderr")
        self.dead = False
        self.memory_spans: list[Span] = []
        """Where this instance's linear memories live, for measuring them."""
        self._instance: Instance | None = None
        self._store: wasmtime.Store | None = wasmtime.Store(engine)
        self._store.set_wasi(wasi_config(StreamLines(guest_log, "info", "stdout"), self._stderr))
        limits = store_limits(footprint_of(component), memory_mib or manifest.limits.memory_mib)
        self._store.set_limits(**dataclasses.asdict(limits))
        self._store.set_epoch_deadline(deadline_ticks(INSTANTIATE_BUDGET_MS))
        self._component = component
        try:
            with ReservationWatch() as watch:
                self._instance = linker.instantiate(self._store, component)
            self.memory_spans = watch.spans
        except wasmtime.WasmtimeError as exc:
            self._discard()
            raise PluginLoadError(
                manifest.name, manifest.version, _instantiate_reason(exc)
            ) from None

    def call(
        self,
        export: ExportRef,
        *args: Any,
        budget_ms: int | None = None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> Any:
        """Calls ``export`` and returns what it returned, or raises `PluginTrap` and dies.

        The budget is the manifest's call timeout unless ``budget_ms`` says otherwise. It is
        armed after the arguments are copied in, so the host's copying is never charged to
        the plugin; an output over ``max_output_bytes`` is refused before it is converted.
        """
        with self._lock:
            store = self._store
            if self.dead or store is None:
                raise PluginTrap(
                    self._manifest.label, TrapKind.CRASH, "instance is no longer usable"
                )
            func, signature = self._funcs.get(export) or self._lookup(store, export)
            lowered = LoweredArgs(store, signature, args)
            try:
                budget = budget_ms or self._manifest.limits.call_timeout_ms
                store.set_epoch_deadline(deadline_ticks(budget))
                try:
                    result = invoke(store, func, signature, lowered, max_output_bytes)
                    func.post_return(store)
                    return result
                except BaseException as exc:
                    kind, detail = classify_failure(exc, self._stderr.last_error_line())
                    exc.__traceback__ = None  # the traceback's frames keep the dead Store alive
            finally:
                lowered.release()
            self._discard()
        gc.collect()  # a trapped Store sits in reference cycles holding its linear memory
        give_back_heap()
        raise PluginTrap(self._manifest.label, kind, detail)

    def result_type(self, export: ExportRef) -> Any:
        """The export's result type, for interpreting what it returns."""
        with self._lock:
            if self._store is None:
                raise PluginTrap(
                    self._manifest.label, TrapKind.CRASH, "instance is no longer usable"
                )
            _func, signature = self._funcs.get(export) or self._lookup(self._store, export)
            return signature.result

    def close(self) -> None:
        """Drops the Store, waiting for a call in progress to finish first."""
        with self._lock:
            self._discard()
        give_back_heap()

    def _lookup(self, store: wasmtime.Store, export: ExportRef) -> tuple[Func, Signature]:
        interface = self._component.get_export_index(export.interface)
        index = self._component.get_export_index(export.function, interface)
        func = None
        if index is not None and self._instance is not None:
            func = self._instance.get_func(store, index)
        if func is None:
            raise PluginTrap(self._manifest.label, TrapKind.HOST_ERROR, f"no export {export}")
        found = self._funcs[export] = (func, Signature.of(func, store))
        return found

    def _discard(self) -> None:
        self.dead = True
        self._funcs.clear()
        self._instance = None
        self._store = None


def _instantiate_reason(exc: wasmtime.WasmtimeError) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else repr(exc)
    if "matching implementation was not found" in text:
        return f"cannot be linked: {text}"
    if "memory minimum size" in text:
        return f"needs more memory than its manifest allows: {text}"
    return f"failed to start: {text}"
