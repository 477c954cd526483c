"""CPU priority of the threads that run plugin calls: heavy calls yield the cores to light ones.

Guest code runs on the calling thread with the GIL released, so a plugin that burns its
whole budget on every call takes a core per instance. On a 2-core Pi that starves every
other page. The kernel already schedules threads fairly by niceness, so a thread whose last
call was heavy is niced down and one whose last call was light comes back up: the device's
dashboard keeps its cores while someone floods a slow plugin.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HEAVY_CALL_CPU_S = 0.02
"""A call that used more CPU than this marks its thread heavy (a page render takes ~1 ms)."""
HEAVY_NICENESS = 10
LIGHT_NICENESS = 0
TICK_NICENESS = 10
"""Periodic ticks always run below requests."""

_current = threading.local()


def set_thread_niceness(niceness: int) -> None:
    """Sets this thread's niceness; without the right to raise priority, it stays lower."""
    if getattr(_current, "niceness", LIGHT_NICENESS) == niceness:
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        _current.niceness = niceness


def fair_share(call: Callable[[], T]) -> T:
    """Runs ``call`` and sets this thread's priority for its next call by what this one cost."""
    started = time.thread_time()
    try:
        return call()
    finally:
        heavy = time.thread_time() - started > HEAVY_CALL_CPU_S
        set_thread_niceness(HEAVY_NICENESS if heavy else LIGHT_NICENESS)
