"""CPU priority of the threads that run scheduled plugin calls.

Guest code runs on the calling thread with the GIL released, so an automation plugin that
burns its whole budget on every tick takes a core. Ticks therefore run a little below
requests. Only a little: a call's budget is wall-clock time, so a thread starved of CPU by
the host's own choice would time out on work that is not the plugin's fault.
"""

from __future__ import annotations

import contextlib
import os
import threading

TICK_NICENESS = 5
"""Below requests (0) and compiles (10): under full load a tick still gets about a quarter
of a core, far more than a light tick needs within its budget."""


def set_thread_niceness(niceness: int) -> None:
    """Lowers this thread's priority; an unprivileged process cannot raise it back."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
