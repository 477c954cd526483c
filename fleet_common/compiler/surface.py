"""WIT-like text for the types wasmtime reports, so two components' surfaces can be compared.

wasmtime links Python host functions without checking their types and instantiates a
component whose exports have the wrong signature, so a mismatch would surface only as a
failed call. Rendering each import and export as text here lets `fleet_common.contract`
compare them with the contract's reference signatures as plain data.
"""

from __future__ import annotations

from typing import Any

import wasmtime
from wasmtime import component as types

from fleet_common.contract.signatures import Functions, Surface

_SCALARS: dict[type, str] = {
    types.Bool: "bool",
    types.U8: "u8",
    types.U16: "u16",
    types.U32: "u32",
    types.U64: "u64",
    types.S8: "s8",
    types.S16: "s16",
    types.S32: "s32",
    types.S64: "s64",
    types.F32: "f32",
    types.F64: "f64",
    types.Char: "char",
    types.String: "string",
}


def describe_type(ty: Any) -> str:
    """Renders a wasmtime value type as WIT-like text."""
    if type(ty) in _SCALARS:
        return _SCALARS[type(ty)]
    if isinstance(ty, types.ListType):
        return f"list<{describe_type(ty.element)}>"
    if isinstance(ty, types.OptionType):
        return f"option<{describe_type(ty.payload)}>"
    if isinstance(ty, types.ResultType):
        ok = describe_type(ty.ok) if ty.ok is not None else "_"
        err = describe_type(ty.err) if ty.err is not None else "_"
        return f"result<{ok}, {err}>"
    if isinstance(ty, types.RecordType):
        return "record{" + ", ".join(f"{n}: {describe_type(t)}" for n, t in ty.fields) + "}"
    if isinstance(ty, types.TupleType):
        return "tuple<" + ", ".join(describe_type(t) for t in ty.elements) + ">"
    if isinstance(ty, types.VariantType):
        cases = (n + (f"({describe_type(t)})" if t is not None else "") for n, t in ty.cases)
        return "variant{" + ", ".join(cases) + "}"
    if isinstance(ty, types.EnumType):
        return "enum{" + ", ".join(ty.names) + "}"
    if isinstance(ty, types.FlagsType):
        return "flags{" + ", ".join(ty.names) + "}"
    return type(ty).__name__


def _describe_item(item: Any) -> str:
    ty = item.ty if hasattr(item, "ty") else item
    if isinstance(ty, types.FuncType):
        params = ", ".join(f"{name}: {describe_type(t)}" for name, t in ty.params)
        result = f" -> {describe_type(ty.result)}" if ty.result is not None else ""
        return f"func({params}){result}"
    if isinstance(ty, types.ResourceType):
        return "resource"
    return "type " + describe_type(ty)


def _functions_of(engine: wasmtime.Engine, item: Any) -> Functions:
    """The functions an import or export carries; named types appear inline in them."""
    ty = item.ty
    if isinstance(ty, types.FuncType):
        return {"": _describe_item(ty)}
    if isinstance(ty, types.ComponentInstanceType):
        return {
            name: _describe_item(member)
            for name, member in ty.exports(engine).items()
            if isinstance(member.ty, types.FuncType)
        }
    return {}


def component_surface(engine: wasmtime.Engine, component: types.Component) -> Surface:
    """A compiled component's imports and exports, each name mapped to its functions."""
    component_type = component.type
    return Surface(
        imports={n: _functions_of(engine, i) for n, i in component_type.imports(engine).items()},
        exports={n: _functions_of(engine, i) for n, i in component_type.exports(engine).items()},
    )
