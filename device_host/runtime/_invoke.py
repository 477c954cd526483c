"""Calling a component function in steps the host accounts for separately.

wasmtime-py's ``Func.__call__`` converts the Python arguments to C values, runs the guest,
and converts the result back, all in one call. The host needs the steps apart: arguments
are converted *before* the guest's time budget is armed (copying a request into the guest
is the host's work, not the plugin's), and a result is measured in its C form *before* it
becomes Python objects, so an oversized output is refused without being copied again.
"""

from __future__ import annotations

import ctypes
from ctypes import byref, pointer
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Func
from wasmtime.component._enter import enter_wasm

_KIND = {
    name: getattr(ffi, f"WASMTIME_COMPONENT_{name}").value
    for name in ("STRING", "LIST", "RECORD", "TUPLE", "VARIANT", "OPTION", "RESULT", "ENUM")
}
_ELEMENT_COST = 8
"""What one list element, record field or case costs on top of its payload, in bytes."""


class OutputTooLarge(Exception):
    """A guest returned more than the host accepts from this call."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"returned at least {size} bytes; the limit is {limit}")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Signature:
    """A function's parameter and result types, read once per export instead of per call."""

    params: tuple[Any, ...]
    result: Any | None

    @classmethod
    def of(cls, func: Func, store: wasmtime.Store) -> Signature:
        func_type = func.type(store)
        return cls(tuple(ty for _name, ty in func_type.params), func_type.result)


class LoweredArgs:
    """A call's arguments as C values; owns their memory until `release`."""

    def __init__(self, store: wasmtime.Store, signature: Signature, args: tuple[Any, ...]) -> None:
        if len(args) != len(signature.params):
            raise TypeError(f"{len(args)} arguments for {len(signature.params)} parameters")
        self.array = (ffi.wasmtime_component_val_t * len(args))()
        self.count = 0
        try:
            for ty, value in zip(signature.params, args, strict=True):
                ty.convert_to_c(store, value, pointer(self.array[self.count]))
                self.count += 1
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        for index in range(self.count):
            ffi.wasmtime_component_val_delete(byref(self.array[index]))
        self.count = 0


def invoke(
    store: wasmtime.Store,
    func: Func,
    signature: Signature,
    args: LoweredArgs,
    max_output_bytes: int,
) -> Any:
    """Runs the guest with already-lowered arguments; returns the result as Python values.

    Raises `OutputTooLarge` (the C value freed, nothing converted) when the result exceeds
    ``max_output_bytes``, and what wasmtime raises when the guest traps.
    """
    result_type = signature.result
    result = ffi.wasmtime_component_val_t() if result_type is not None else None

    def run() -> ctypes._Pointer[ffi.wasmtime_error_t]:
        return ffi.wasmtime_component_func_call(
            byref(func._func),
            store._context(),
            args.array,
            args.count,
            byref(result) if result is not None else None,
            1 if result is not None else 0,
        )

    enter_wasm(run)
    if result is None or result_type is None:
        return None
    size = output_bytes(result, max_output_bytes)
    if size > max_output_bytes:
        ffi.wasmtime_component_val_delete(byref(result))
        raise OutputTooLarge(size, max_output_bytes)
    return result_type.convert_from_c(result)


def output_bytes(value: Any, stop_after: int) -> int:
    """The payload bytes in a C value tree: string bytes plus a small cost per element.

    The walk stops once the count passes ``stop_after``, so measuring a hostile output costs
    at most the limit, never the output's size.
    """
    total = 0
    pending = [value]
    while pending and total <= stop_after:
        val = pending.pop()
        kind = val.kind
        if kind == _KIND["STRING"] or kind == _KIND["ENUM"]:
            total += val.of.string.size
        elif kind == _KIND["LIST"] or kind == _KIND["TUPLE"]:
            items = val.of.list
            total += items.size * _ELEMENT_COST
            pending.extend(items.data[i] for i in range(min(items.size, stop_after)))
        elif kind == _KIND["RECORD"]:
            fields = val.of.record
            total += fields.size * _ELEMENT_COST
            pending.extend(fields.data[i].val for i in range(fields.size))
        elif kind == _KIND["VARIANT"]:
            case = val.of.variant
            total += case.discriminant.size + _ELEMENT_COST
            if case.val:
                pending.append(case.val.contents)
        elif kind == _KIND["OPTION"]:
            if val.of.option:
                pending.append(val.of.option.contents)
        elif kind == _KIND["RESULT"]:
            if val.of.result.val:
                pending.append(val.of.result.val.contents)
        else:
            total += _ELEMENT_COST
    return total
