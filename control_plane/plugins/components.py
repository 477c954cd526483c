"""The contract interfaces an uploaded component uses, as the reviewer sees them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentSurface:
    """The contract interfaces a component imports and exports (WASI left out)."""

    imports: list[str]
    exports: list[str]
