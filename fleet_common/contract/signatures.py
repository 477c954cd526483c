"""A component's surface as plain data: what it imports and exports, function by function.

The runtime renders wasmtime's types as WIT-like text (`device_host.runtime`); the
contract compares that text with its reference signatures without touching wasmtime, so
the control plane and the build can reason about surfaces too.
"""

from __future__ import annotations

from dataclasses import dataclass

Functions = dict[str, str]
"""Function name to signature; a function imported or exported on its own is named ``""``."""


@dataclass(frozen=True)
class Surface:
    """Every import and export of a component, each name mapped to its functions."""

    imports: dict[str, Functions]
    exports: dict[str, Functions]

    def to_json(self) -> dict[str, dict[str, Functions]]:
        return {"imports": self.imports, "exports": self.exports}

    @classmethod
    def from_json(cls, data: object) -> Surface:
        """Parses what `to_json` wrote (it crosses a process boundary); raises ValueError."""
        if not isinstance(data, dict) or set(data) != {"imports", "exports"}:
            raise ValueError("a surface has exactly imports and exports")
        sides = []
        for side in (data["imports"], data["exports"]):
            if not isinstance(side, dict) or not all(
                isinstance(name, str)
                and isinstance(functions, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in functions.items())
                for name, functions in side.items()
            ):
                raise ValueError("a surface maps names to functions to signatures")
            sides.append(side)
        return cls(imports=sides[0], exports=sides[1])
