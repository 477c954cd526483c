"""A small pool of instances of one plugin version, so requests run in parallel Stores."""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

from device_host.errors import PluginUnavailable
from device_host.runtime.instance import PluginInstance

T = TypeVar("T")


class InstancePool:
    """Lends instances to callers; creates them lazily, replaces dead ones, closes all on retire.

    Retiring lets calls already running finish on their instance (so a hot swap drops no
    request); instances handed back after that are closed instead of pooled.
    """

    def __init__(self, factory: Callable[[], PluginInstance], size: int, wait_s: float) -> None:
        self._factory = factory
        self._size = size
        self._wait_s = wait_s
        self._idle: queue.LifoQueue[PluginInstance] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._created = 0
        self._retired = False
        self._live: weakref.WeakSet[PluginInstance] = weakref.WeakSet()

    def seed(self, instance: PluginInstance) -> None:
        """Adds an instance created elsewhere (the one the load-time self-check ran in)."""
        with self._lock:
            self._created += 1
            self._live.add(instance)
        self._idle.put(instance)

    def run(self, work: Callable[[PluginInstance], T]) -> T:
        """Runs ``work`` with an instance held exclusively for its duration."""
        instance = self._acquire()
        try:
            return work(instance)
        finally:
            self._release(instance)

    def retire(self) -> None:
        with self._lock:
            self._retired = True
        while True:
            try:
                instance = self._idle.get_nowait()
            except queue.Empty:
                return
            self._forget(instance)

    @property
    def live_instances(self) -> int:
        with self._lock:
            return self._created

    def instances(self) -> list[PluginInstance]:
        """Every instance not yet closed, idle or busy."""
        with self._lock:
            return [instance for instance in self._live if not instance.dead]

    def _acquire(self) -> PluginInstance:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._retired:
                raise PluginUnavailable("this plugin version was replaced")
            may_create = self._created < self._size
            if may_create:
                self._created += 1
        if may_create:
            try:
                instance = self._factory()
                with self._lock:
                    self._live.add(instance)
                return instance
            except BaseException:
                with self._lock:
                    self._created -= 1
                raise
        try:
            return self._idle.get(timeout=self._wait_s)
        except queue.Empty:
            raise PluginUnavailable(
                f"all {self._size} instances stayed busy for {self._wait_s} s"
            ) from None

    def _release(self, instance: PluginInstance) -> None:
        with self._lock:
            keep = not instance.dead and not self._retired
        if keep:
            self._idle.put(instance)
        else:
            self._forget(instance)

    def _forget(self, instance: PluginInstance) -> None:
        instance.close()
        with self._lock:
            self._created -= 1
