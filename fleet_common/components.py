"""What a component file is, checked before anything compiles it: size, magic, footprint.

Both sides refuse the same things the same way: the control plane when a version is
uploaded, a device before it compiles one itself. Reading the footprint costs milliseconds;
a compile costs seconds and hundreds of MB, so nothing that can never fit gets one.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from fleet_common.contract.check import COMPONENT_MAGIC, magic_problem
from fleet_common.digest import file_sha256
from fleet_common.errors import PluginLoadError
from fleet_common.footprint import Footprint, FootprintError, read_footprint
from fleet_common.limits import budget_problem

MAX_COMPONENT_BYTES = 64 << 20
"""The largest component a device loads and a control plane accepts (ours are 18 MB)."""


def size_problem(size: int) -> str:
    return f"the component is {size} bytes, more than the {MAX_COMPONENT_BYTES >> 20} MiB limit"


def inspect_file(path: Path, plugin: str, version: str) -> tuple[Footprint, str, int]:
    """Footprint, sha256 and size of a component file, refused early if it cannot be one.

    The file is mapped, not read: its pages stay in the page cache, not in the heap.
    """
    try:
        size = path.stat().st_size
        if size > MAX_COMPONENT_BYTES:
            raise PluginLoadError(plugin, version, size_problem(size))
        with path.open("rb") as handle:
            head = handle.read(len(COMPONENT_MAGIC))
            problem = magic_problem(head)
            if problem is not None:
                raise PluginLoadError(plugin, version, problem)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                footprint = read_footprint(mapped)
        return footprint, file_sha256(path), size
    except OSError as exc:
        raise PluginLoadError(plugin, version, f"cannot read {path}: {exc}") from None
    except FootprintError as exc:
        raise PluginLoadError(plugin, version, f"not a valid component: {exc}") from None


def refuse_over_budget(footprint: Footprint, memory_mib: int, plugin: str, version: str) -> None:
    problem = budget_problem(footprint, memory_mib)
    if problem is not None:
        raise PluginLoadError(plugin, version, problem)
