"""A plugin's memory cap as Store limits, and the components that can never fit it.

wasmtime's ``memory_size`` and ``table_elements`` limits apply to each memory and each
table on its own, so they are chosen here from the component's footprint so that the
*sum* over everything one instantiation creates stays within the manifest's
``memory-mib``. Counts (memories, tables, core instances) are capped at exactly what the
footprint says, so an instantiation that creates more than the reader saw fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet_common.footprint import TABLE_ELEMENT_BYTES, Footprint, Limits

MIB = 1 << 20
TABLE_GROWTH = 2
"""Headroom for tables without a maximum: twice the largest declared minimum."""
MIN_TABLE_ELEMENTS = 1024


@dataclass(frozen=True)
class StoreLimits:
    """Arguments for ``Store.set_limits``."""

    memory_size: int
    table_elements: int
    instances: int
    tables: int
    memories: int


def table_element_limit(footprint: Footprint) -> int:
    """The per-table element limit: every table's own maximum or minimum, with headroom."""
    largest = max((t.maximum or t.minimum for t in footprint.tables), default=0)
    return max(largest * TABLE_GROWTH, MIN_TABLE_ELEMENTS)


def _table_bytes(footprint: Footprint, per_table: int) -> int:
    return TABLE_ELEMENT_BYTES * sum(
        min(per_table, t.maximum if t.maximum is not None else per_table) for t in footprint.tables
    )


def memory_limit(memories: tuple[Limits, ...], budget: int) -> int:
    """The largest per-memory size such that all memories together stay within ``budget``.

    Memories whose declared maximum is below the limit can only reach that maximum; the
    rest share what is left equally.
    """
    bounded = sorted(memories, key=lambda m: m.maximum if m.maximum is not None else budget + 1)
    remaining, left = budget, len(bounded)
    for memory in bounded:
        share = remaining // left
        if memory.maximum is not None and memory.maximum <= share:
            remaining -= memory.maximum
            left -= 1
        else:
            return share
    return budget


def store_limits(footprint: Footprint, memory_mib: int) -> StoreLimits:
    """Limits under which one instance of the component holds at most ``memory_mib`` in all."""
    per_table = table_element_limit(footprint)
    budget = max(0, memory_mib * MIB - _table_bytes(footprint, per_table))
    return StoreLimits(
        memory_size=memory_limit(footprint.memories, budget),
        table_elements=per_table,
        instances=footprint.core_instances,
        tables=len(footprint.tables),
        memories=len(footprint.memories),
    )


def budget_problem(footprint: Footprint, memory_mib: int) -> str | None:
    """Why the component can never start within ``memory-mib``, or None if it can."""
    at_start = footprint.memory_minimum_bytes + footprint.table_minimum_bytes
    count = len(footprint.memories)
    if at_start > memory_mib * MIB:
        return (
            f"declares {count} linear memor{'y' if count == 1 else 'ies'} of "
            f"{footprint.memory_minimum_bytes / MIB:.1f} MiB and tables of "
            f"{footprint.table_minimum_bytes / 1024:.0f} KiB at start, "
            f"{at_start / MIB:.1f} MiB in all, more than its memory-mib = {memory_mib}"
        )
    limits = store_limits(footprint, memory_mib)
    largest = max((m.minimum for m in footprint.memories), default=0)
    if largest > limits.memory_size:
        return (
            f"needs a linear memory of {largest / MIB:.1f} MiB at start, but its {count} "
            f"memories share memory-mib = {memory_mib}: at most "
            f"{limits.memory_size / MIB:.1f} MiB each"
        )
    return None
