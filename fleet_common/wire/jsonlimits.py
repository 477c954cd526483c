"""Parsing JSON that someone else sent, with its size and nesting bounded before the work.

Python's ``json`` recurses once per nesting level, so a body of ``[[[[…`` raises
``RecursionError`` deep inside the parser; hostile input must get a clear refusal instead.
"""

from __future__ import annotations

import json

from fleet_common.errors import FleetError

MAX_DEPTH = 32
"""Nothing in the protocol nests deeper than a handful of levels."""


class JsonRefused(FleetError):
    """A JSON document is malformed, larger than allowed, or nested too deeply."""


def loads_bounded(data: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> object:
    """The parsed document; raises JsonRefused naming what is wrong with it."""
    if len(data) > max_bytes:
        raise JsonRefused(f"{len(data)} bytes is more than the {max_bytes} allowed")
    try:
        document = json.loads(data)
    except RecursionError:
        raise JsonRefused(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JsonRefused(f"not JSON: {exc}") from None
    if _depth(document) > max_depth:
        raise JsonRefused(f"nested deeper than {max_depth} levels")
    return document


def _depth(document: object) -> int:
    """Nesting depth of containers, walked with an explicit stack (no recursion)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: list[object] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
