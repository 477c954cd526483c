"""A small pool of instances of one plugin version, so requests run in parallel Stores."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from device_host.errors import PluginUnavailable, VersionRetired
from device_host.runtime._instance import PluginInstance

T = TypeVar("T")


class InstancePool:
    """Lends instances to callers; creates them lazily, replaces dead ones, closes all on retire.

    Retiring lets calls already running finish on their instance (so a hot swap drops no
    request); instances handed back after that are closed instead of pooled, and callers
    still waiting for one are told at once, so they can go to the new version.
    """

    def __init__(self, factory: Callable[[], PluginInstance], size: int, wait_s: float) -> None:
        self._factory = factory
        self._size = size
        self._wait_s = wait_s
        self._idle: list[PluginInstance] = []
        self._changed = threading.Condition()
        self._created = 0
        self._retired = False
        self._generation = 0
        self._live: weakref.WeakSet[PluginInstance] = weakref.WeakSet()

    def seed(self, instance: PluginInstance) -> None:
        """Adds an instance created elsewhere (the one the load-time self-check ran in)."""
        with self._changed:
            self._created += 1
            self._live.add(instance)
            self._idle.append(instance)
            self._changed.notify()

    def run(self, work: Callable[[PluginInstance], T]) -> T:
        """Runs ``work`` with an instance held exclusively for its duration.

        Raises `VersionRetired` if the pool was retired before an instance was free.
        """
        instance = self._acquire()
        try:
            return work(instance)
        finally:
            self._release(instance)

    @property
    def size(self) -> int:
        return self._size

    def redirect_waiters(self) -> None:
        """Tells callers waiting for an instance now to go elsewhere (`VersionRetired`).

        Used when a newer version takes over: calls in progress finish here, waiting calls
        move to the newer version, and later calls (a fallback) are still served.
        """
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def retire(self) -> None:
        with self._changed:
            self._retired = True
            idle, self._idle = self._idle, []
            self._created -= len(idle)
            self._changed.notify_all()
        for instance in idle:
            instance.close()

    @property
    def live_instances(self) -> int:
        with self._changed:
            return self._created

    def instances(self) -> list[PluginInstance]:
        """Every instance not yet closed, idle or busy."""
        with self._changed:
            return [instance for instance in self._live if not instance.dead]

    def _acquire(self) -> PluginInstance:
        deadline = time.monotonic() + self._wait_s
        with self._changed:
            generation = self._generation
            while True:
                if self._retired or self._generation != generation:
                    raise VersionRetired("this plugin version was replaced")
                if self._idle:
                    return self._idle.pop()
                if self._created < self._size:
                    self._created += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PluginUnavailable(
                        f"all {self._size} instances stayed busy for {self._wait_s:.0f} s"
                    )
                self._changed.wait(remaining)
        try:
            instance = self._factory()
        except BaseException:
            with self._changed:
                self._created -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._live.add(instance)
        return instance

    def _release(self, instance: PluginInstance) -> None:
        with self._changed:
            keep = not instance.dead and not self._retired
            if keep:
                self._idle.append(instance)
            else:
                self._created -= 1
            self._changed.notify()
        if not keep:
            instance.close()
