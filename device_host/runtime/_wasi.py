"""WASI for plugins, locked down: no files, no network, no environment, no argv, no sleeping.

componentize-py components import the whole WASI 0.2 surface, so the host provides it
with an empty `WasiConfig` (wasmtime then grants no preopens, no sockets and no
environment) and replaces the monotonic clock so that sleeping traps at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime.component import Linker

from device_host.errors import BlockingCallForbidden

WASI_VERSION = "0.2.9"


def add_locked_down_wasi(linker: Linker) -> None:
    """Adds WASI 0.2 to ``linker`` with clock subscriptions (sleeps and timed waits) refused."""
    linker.allow_shadowing = True
    linker.add_wasip2()
    with (
        linker.root() as root,
        root.add_instance(f"wasi:clocks/monotonic-clock@{WASI_VERSION}") as clock,
    ):
        clock.add_func("now", lambda _store: time.monotonic_ns())
        clock.add_func("resolution", lambda _store: 1)
        clock.add_func("subscribe-instant", _refuse_wait)
        clock.add_func("subscribe-duration", _refuse_wait)
    linker.allow_shadowing = False


def _refuse_wait(_store: Any, _when: int) -> None:
    raise BlockingCallForbidden("plugins may not sleep or wait (time.sleep and timed waits)")


def wasi_config(
    stdout: Callable[[bytes], None], stderr: Callable[[bytes], None]
) -> wasmtime.WasiConfig:
    """A WasiConfig that grants nothing and hands the guest's output to the host's sinks."""
    config = wasmtime.WasiConfig()
    config.stdout_custom = stdout
    config.stderr_custom = stderr
    return config
