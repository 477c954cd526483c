"""Turning what a guest call raises or returns into the host's own types.

Every failure of a component call arrives as `WasmtimeError` (or the exception a host
function raised); only the message says what happened, so it is classified here, once.
"""

from __future__ import annotations

from typing import Any

import wasmtime
from wasmtime.component import Variant

from device_host.errors import BlockingCallForbidden, TrapKind
from device_host.runtime._invoke import OutputTooLarge


def classify_failure(exc: BaseException, guest_error: str | None) -> tuple[TrapKind, str]:
    """The kind of a failed call and a one-line explanation for logs and error pages."""
    if isinstance(exc, BlockingCallForbidden):
        return TrapKind.BLOCKING_CALL, str(exc)
    if isinstance(exc, OutputTooLarge):
        return TrapKind.BAD_OUTPUT, f"the plugin {exc}"
    if isinstance(exc, wasmtime.ExitTrap):
        return TrapKind.EXIT, f"the plugin called exit (status {exc.code})"
    if not isinstance(exc, wasmtime.WasmtimeError):
        return TrapKind.HOST_ERROR, f"host function failed: {type(exc).__name__}: {exc}"
    message = str(exc)
    if "wasm trap: interrupt" in message:
        return TrapKind.TIMEOUT, "the call ran past its time budget"
    if guest_error and guest_error.startswith("MemoryError"):
        return TrapKind.OUT_OF_MEMORY, "the plugin ran out of its memory budget"
    if "out of bounds memory" in message or "memory minimum size" in message:
        return TrapKind.OUT_OF_MEMORY, _last_line(message)
    if guest_error:
        return TrapKind.CRASH, f"uncaught exception: {guest_error}"
    return TrapKind.CRASH, _last_line(message)


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown failure"


def split_result(result_type: Any, value: Any) -> tuple[bool, Any]:
    """Normalises a returned WIT ``result`` to ``(is_ok, payload)``.

    wasmtime-py returns ``Variant(tag, payload)`` when the ok and err types lift to the
    same Python class and the bare payload otherwise, where only the types tell them apart.
    """
    ok_classes: set[type] = set()
    err_classes: set[type] = set()
    _lifted_classes(result_type.ok, ok_classes)
    _lifted_classes(result_type.err, err_classes)
    if ok_classes & err_classes:
        if not isinstance(value, Variant) or value.tag not in ("ok", "err"):
            raise TypeError(f"expected a tagged result, got {value!r}")
        return value.tag == "ok", value.payload
    if result_type.ok is None:
        return value is None, value
    return isinstance(value, tuple(ok_classes)), value


def _lifted_classes(ty: Any, classes: set[type]) -> None:
    if ty is None:
        classes.add(type(None))
    else:
        ty.add_classes(classes)
