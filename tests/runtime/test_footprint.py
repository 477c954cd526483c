"""Reading what a component will allocate, from its bytes, with hostile bytes the normal case."""

from __future__ import annotations

import pytest

from fleet_common.footprint import (
    MAX_DEPTH,
    FootprintError,
    Limits,
    read_footprint,
)
from tests.runtime.wat_components import assemble, memory_hog

PAGE = 64 << 10


def test_a_componentize_py_component_defines_one_memory_two_tables_and_fourteen_instances(build):
    footprint = read_footprint((build("dashboard") / "dashboard.wasm").read_bytes())

    assert [m.minimum // PAGE for m in footprint.memories] == [202]
    assert sorted(t.minimum for t in footprint.tables) == [90, 5674]
    assert (footprint.core_instances, footprint.core_modules) == (14, 14)


def test_every_memory_a_module_defines_is_counted(tmp_path):
    footprint = read_footprint(
        memory_hog(tmp_path / "hog.wasm", memories=8, pages=1000).read_bytes()
    )

    assert footprint.memories == (Limits(1000 * PAGE, None),) * 8
    assert footprint.memory_minimum_bytes == 500 << 20


def test_a_module_instantiated_twice_counts_twice_and_an_uninstantiated_one_not_at_all(tmp_path):
    wasm = assemble(
        """(component
  (core module $big (memory 10 20) (table 7 funcref))
  (core module $unused (memory 500))
  (core instance (instantiate $big))
  (core instance (instantiate $big)))""",
        tmp_path / "twice.wasm",
    )

    footprint = read_footprint(wasm.read_bytes())

    assert footprint.memories == (Limits(10 * PAGE, 20 * PAGE),) * 2
    assert footprint.tables == (Limits(7, None),) * 2
    assert (footprint.core_instances, footprint.core_modules) == (2, 2)


def test_a_nested_component_counts_per_instantiation_with_modules_it_aliases_from_outside(
    tmp_path,
):
    wasm = assemble(
        """(component
  (core module $m (memory 3))
  (component $inner
    (alias outer 1 $m (core module $outer))
    (core instance (instantiate $outer)))
  (instance (instantiate $inner))
  (instance (instantiate $inner))
  (instance (instantiate $inner)))""",
        tmp_path / "nested.wasm",
    )

    footprint = read_footprint(wasm.read_bytes())

    assert footprint.memories == (Limits(3 * PAGE, None),) * 3
    assert footprint.core_instances == 3


def test_a_truncated_component_is_refused_unless_cut_between_sections(tmp_path):
    whole = memory_hog(tmp_path / "hog.wasm", memories=2, pages=1).read_bytes()
    complete = read_footprint(whole)
    refused = 0

    for cut in range(len(whole)):
        try:
            partial = read_footprint(whole[:cut])
        except FootprintError as error:
            assert "malformed component at byte" in str(error)
            refused += 1
        else:
            assert len(partial.memories) <= len(complete.memories)

    assert refused > len(whole) * 0.9


def test_a_length_larger_than_the_file_is_refused_without_reading_it():
    header = b"\x00asm\x0d\x00\x01\x00"

    with pytest.raises(FootprintError, match=r"4294967295 bytes claimed, 0 left"):
        read_footprint(header + b"\x01\xff\xff\xff\xff\x0f")


def test_an_overlong_integer_is_refused():
    header = b"\x00asm\x0d\x00\x01\x00"

    with pytest.raises(FootprintError, match="integer too long"):
        read_footprint(header + b"\x01" + b"\x80" * 10 + b"\x00")


def test_components_nested_too_deep_are_refused():
    header = b"\x00asm\x0d\x00\x01\x00"
    data = header
    for _ in range(MAX_DEPTH + 1):
        data = header + b"\x04" + _uleb(len(data)) + data

    with pytest.raises(FootprintError, match=f"nested deeper than {MAX_DEPTH}"):
        read_footprint(data)


def test_instantiations_multiplying_past_the_bound_are_refused(tmp_path):
    wasm = assemble(_bomb(levels=4, fanout=20), tmp_path / "bomb.wasm")

    with pytest.raises(FootprintError, match="creates more than 10000 objects"):
        read_footprint(wasm.read_bytes())


def _bomb(*, levels: int, fanout: int) -> str:
    """Components that each instantiate the one inside ``fanout`` times: fanout**levels modules."""
    text = "(component $c (core module $m (memory 0)) (core instance (instantiate $m)))"
    for _ in range(levels):
        calls = " ".join("(instance (instantiate $c))" for _ in range(fanout))
        text = f"(component $c {text} {calls})"
    return text.replace("(component $c ", "(component ", 1)


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
