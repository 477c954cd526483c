"""What a component will allocate when instantiated, read from its binary without compiling it.

wasmtime's Store limits count per linear memory and per table, so a component that defines
eight memories would get eight times a plugin's cap. This reader walks the component binary
format (components, nested components and their core modules) and sums what one
instantiation creates: each core module instantiated, with the memories and tables it
defines. The host refuses what cannot fit its manifest's ``memory-mib`` before any compile
and sets every Store's limits from the result.

What the reader cannot see (a module or component that arrives through an import or an
instance export) counts as nothing, which errs on the safe side: the Store limits built
from an undercount make such an instantiation fail instead of letting it grow.

The input is hostile: nesting depth, entry counts and totals are bounded, every length is
checked against what is left, and any malformed input raises `FootprintError` with the
offset. Sections are skipped by their size, so an 18 MB component costs a few
milliseconds; the reader only indexes its buffer (an mmap works) and copies nothing large.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fleet_common.errors import FleetError

WASM_PAGE = 64 * 1024
TABLE_ELEMENT_BYTES = 8
"""What wasmtime stores per table element (its own documentation for ``table_elements``)."""

MAX_DEPTH = 16
MAX_COMPONENT_SECTIONS = 200_000
MAX_CORE_MODULES = 1_000
MAX_CREATED = 10_000
"""Core instances, memories and tables one instantiation may create (wasmtime's own default)."""

_MAGIC = b"\x00asm"
_COMPONENT_VERSION = b"\x0d\x00\x01\x00"
_MODULE_VERSION = b"\x01\x00\x00\x00"

_SORT_CORE = 0x00
_CORE_SORT_MODULE = 0x11
_SORT_COMPONENT = 0x04


class FootprintError(FleetError):
    """The component binary is malformed or larger than the host will read."""


class Buffer(Protocol):
    """Bytes that can be indexed and sliced: ``bytes`` or a read-only ``mmap``."""

    def __getitem__(self, index: int, /) -> int: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Limits:
    """A memory's or table's declared size: minimum and optional maximum, in bytes or elements."""

    minimum: int
    maximum: int | None


@dataclass(frozen=True)
class Footprint:
    """Everything one instantiation of a component creates."""

    memories: tuple[Limits, ...]
    """Each linear memory created, in bytes."""
    tables: tuple[Limits, ...]
    """Each table created, in elements."""
    core_instances: int
    core_modules: int
    """Core modules defined anywhere in the binary (instantiated or not)."""

    @property
    def memory_minimum_bytes(self) -> int:
        return sum(memory.minimum for memory in self.memories)

    @property
    def table_minimum_bytes(self) -> int:
        return sum(table.minimum for table in self.tables) * TABLE_ELEMENT_BYTES

    def to_json(self) -> dict[str, object]:
        """The footprint as a compiled statement carries it (signed, so trusted as is)."""
        return {
            "memories": [[m.minimum, m.maximum] for m in self.memories],
            "tables": [[t.minimum, t.maximum] for t in self.tables],
            "core_instances": self.core_instances,
            "core_modules": self.core_modules,
        }

    @classmethod
    def from_json(cls, data: object) -> Footprint:
        """Parses `to_json`'s form; raises `FootprintError` naming what is wrong."""
        if not isinstance(data, dict):
            raise FootprintError("footprint must be an object")

        def limits(key: str) -> tuple[Limits, ...]:
            items = data.get(key)
            if not isinstance(items, list) or len(items) > MAX_CREATED:
                raise FootprintError(f"footprint.{key} must be a list of [minimum, maximum]")
            parsed = []
            for item in items:
                if not (isinstance(item, list) and len(item) == 2 and _count(item[0])):
                    raise FootprintError(f"footprint.{key} has a bad entry")
                if item[1] is not None and not _count(item[1]):
                    raise FootprintError(f"footprint.{key} has a bad maximum")
                parsed.append(Limits(item[0], item[1]))
            return tuple(parsed)

        counts = data.get("core_instances"), data.get("core_modules")
        if not all(_count(value) for value in counts):
            raise FootprintError("footprint core_instances and core_modules must be counts")
        return cls(limits("memories"), limits("tables"), int(counts[0]), int(counts[1]))  # type: ignore[arg-type]


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64


@dataclass
class _Cost:
    memories: list[Limits] = field(default_factory=list)
    tables: list[Limits] = field(default_factory=list)
    instances: int = 0

    def add(self, other: _Cost) -> None:
        if (
            len(self.memories) + len(other.memories) > MAX_CREATED
            or len(self.tables) + len(other.tables) > MAX_CREATED
            or self.instances + other.instances > MAX_CREATED
        ):
            raise FootprintError(f"one instantiation creates more than {MAX_CREATED} objects")
        self.memories += other.memories
        self.tables += other.tables
        self.instances += other.instances


_NOTHING = _Cost()


@dataclass
class _Scope:
    """One component's index spaces that matter here: core modules and components."""

    modules: list[_Cost] = field(default_factory=list)
    components: list[_Cost] = field(default_factory=list)


class _Reader:
    def __init__(self, data: Buffer, start: int, end: int) -> None:
        self.data = data
        self.pos = start
        self.end = end

    def fail(self, what: str) -> FootprintError:
        return FootprintError(f"malformed component at byte {self.pos}: {what}")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uleb(self, bits: int = 32) -> int:
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift >= bits + 7:
                raise self.fail("integer too long")
        if result >> bits:
            raise self.fail("integer out of range")
        return result

    def sleb(self) -> int:
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift >= 42:
                raise self.fail("integer too long")
        return result - (1 << shift) if byte & 0x40 else result

    def count(self) -> int:
        """A vector length, which can never exceed the bytes left."""
        value = self.uleb()
        if value > self.end - self.pos:
            raise self.fail(f"a list of {value} entries in {self.end - self.pos} bytes")
        return value

    def skip(self, size: int) -> None:
        if size > self.end - self.pos:
            raise self.fail(f"{size} bytes claimed, {self.end - self.pos} left")
        self.pos += size

    def name(self) -> None:
        self.skip(self.uleb())

    def sub(self) -> _Reader:
        """The next LEB128-sized range as its own reader; this one moves past it."""
        size = self.uleb()
        start = self.pos
        self.skip(size)
        return _Reader(self.data, start, start + size)

    def preamble(self, version: bytes) -> None:
        for expected in (*_MAGIC, *version):
            if self.byte() != expected:
                raise self.fail("bad magic or version")


def read_footprint(data: Buffer) -> Footprint:
    """The footprint of one instantiation of the component in ``data``."""
    reader = _Reader(data, 0, len(data))
    counter = [0, 0]
    cost = _component(reader, [], counter)
    return Footprint(tuple(cost.memories), tuple(cost.tables), cost.instances, counter[1])


def _component(reader: _Reader, outer: list[_Scope], counter: list[int]) -> _Cost:
    """Reads a component to its end; counter = [sections read, core modules defined]."""
    if len(outer) >= MAX_DEPTH:
        raise reader.fail(f"components nested deeper than {MAX_DEPTH}")
    reader.preamble(_COMPONENT_VERSION)
    scope = _Scope()
    scopes = [scope, *outer]
    cost = _Cost()
    while reader.pos < reader.end:
        counter[0] += 1
        if counter[0] > MAX_COMPONENT_SECTIONS:
            raise reader.fail(f"more than {MAX_COMPONENT_SECTIONS} sections")
        section_id = reader.byte()
        body = reader.sub()
        if section_id == 1:
            counter[1] += 1
            if counter[1] > MAX_CORE_MODULES:
                raise body.fail(f"more than {MAX_CORE_MODULES} core modules")
            scope.modules.append(_module(body))
        elif section_id == 2:
            _core_instances(body, scope, cost)
        elif section_id == 4:
            scope.components.append(_component(body, scopes, counter))
        elif section_id == 5:
            _instances(body, scope, cost)
        elif section_id == 6:
            _aliases(body, scopes)
        elif section_id == 10:
            _imports(body, scope)
        elif section_id == 11:
            _exports(body, scope)
        elif section_id not in (0, 3, 7, 8, 9):
            raise body.fail(f"unknown component section {section_id}")
        else:
            continue
        if body.pos != body.end:
            raise body.fail(f"section {section_id} has trailing bytes")
    return cost


def _module(reader: _Reader) -> _Cost:
    reader.preamble(_MODULE_VERSION)
    cost = _Cost(instances=1)
    while reader.pos < reader.end:
        section_id = reader.byte()
        body = reader.sub()
        if section_id == 4:
            cost.tables += [_table(body) for _ in range(body.count())]
        elif section_id == 5:
            cost.memories += [_memory(body) for _ in range(body.count())]
        else:
            continue
        if len(cost.memories) > MAX_CREATED or len(cost.tables) > MAX_CREATED:
            raise body.fail(f"more than {MAX_CREATED} memories or tables")
        if body.pos != body.end:
            raise body.fail(f"module section {section_id} has trailing bytes")
    return cost


def _limits(reader: _Reader, unit: int, kind: str) -> Limits:
    flags = reader.byte()
    if flags & ~0x0F:
        raise reader.fail(f"unknown {kind} limits flags {flags:#x}")
    bits = 64 if flags & 0x04 else 32
    minimum = reader.uleb(bits)
    maximum = reader.uleb(bits) if flags & 0x01 else None
    if flags & 0x08:
        log2 = reader.uleb()
        if log2 > 16:
            raise reader.fail(f"page size 2**{log2}")
        unit = 1 << log2
    return Limits(minimum * unit, None if maximum is None else maximum * unit)


def _memory(reader: _Reader) -> Limits:
    return _limits(reader, WASM_PAGE, "memory")


def _table(reader: _Reader) -> Limits:
    with_initializer = reader.data[reader.pos] == 0x40 if reader.pos < reader.end else False
    if with_initializer:
        reader.skip(1)
        if reader.byte() != 0x00:
            raise reader.fail("bad table initializer prefix")
    _reference_type(reader)
    limits = _limits(reader, 1, "table")
    if with_initializer:
        _constant_expression(reader)
    return limits


def _reference_type(reader: _Reader) -> None:
    code = reader.byte()
    if code in (0x63, 0x64):
        reader.sleb()
    elif not 0x69 <= code <= 0x74:
        raise reader.fail(f"unknown reference type {code:#x}")


def _constant_expression(reader: _Reader) -> None:
    """Skips a table initializer: only the constant instructions a table can start with."""
    while True:
        opcode = reader.byte()
        if opcode == 0x0B:
            return
        if opcode == 0xD0:
            reader.sleb()
        elif opcode in (0xD2, 0x23):
            reader.uleb()
        else:
            raise reader.fail(f"table initializer instruction {opcode:#x} is not read")


def _resolve(spaces: Sequence[_Cost], index: int, reader: _Reader, what: str) -> _Cost:
    if index >= len(spaces):
        raise reader.fail(f"{what} index {index} is not defined")
    return spaces[index]


def _core_instances(reader: _Reader, scope: _Scope, cost: _Cost) -> None:
    for _ in range(reader.count()):
        kind = reader.byte()
        if kind == 0x00:
            cost.add(_resolve(scope.modules, reader.uleb(), reader, "core module"))
            for _ in range(reader.count()):
                reader.name()
                if reader.byte() != 0x12:
                    raise reader.fail("a core instantiation argument that is not an instance")
                reader.uleb()
        elif kind == 0x01:
            for _ in range(reader.count()):
                reader.name()
                reader.byte()
                reader.uleb()
        else:
            raise reader.fail(f"unknown core instance kind {kind:#x}")


def _sort(reader: _Reader) -> tuple[int, int]:
    sort = reader.byte()
    return (sort, reader.byte()) if sort == _SORT_CORE else (sort, 0)


def _instances(reader: _Reader, scope: _Scope, cost: _Cost) -> None:
    for _ in range(reader.count()):
        kind = reader.byte()
        if kind == 0x00:
            cost.add(_resolve(scope.components, reader.uleb(), reader, "component"))
            for _ in range(reader.count()):
                reader.name()
                _sort(reader)
                reader.uleb()
        elif kind == 0x01:
            for _ in range(reader.count()):
                _extern_name(reader)
                _sort(reader)
                reader.uleb()
        else:
            raise reader.fail(f"unknown instance kind {kind:#x}")


def _aliases(reader: _Reader, scopes: list[_Scope]) -> None:
    for _ in range(reader.count()):
        sort = _sort(reader)
        target = reader.byte()
        found: _Cost = _NOTHING
        if target in (0x00, 0x01):
            reader.uleb()
            reader.name()
        elif target == 0x02:
            depth, index = reader.uleb(), reader.uleb()
            if depth >= len(scopes):
                raise reader.fail(f"an outer alias {depth} levels up")
            outer = scopes[depth]
            if sort == (_SORT_CORE, _CORE_SORT_MODULE):
                found = _resolve(outer.modules, index, reader, "core module")
            elif sort == (_SORT_COMPONENT, 0):
                found = _resolve(outer.components, index, reader, "component")
        else:
            raise reader.fail(f"unknown alias target {target:#x}")
        _append(scopes[0], sort, found)


def _append(scope: _Scope, sort: tuple[int, int], cost: _Cost) -> None:
    if sort == (_SORT_CORE, _CORE_SORT_MODULE):
        scope.modules.append(cost)
    elif sort == (_SORT_COMPONENT, 0):
        scope.components.append(cost)


def _extern_name(reader: _Reader) -> None:
    prefix = reader.byte()
    if prefix not in (0x00, 0x01):
        raise reader.fail(f"unknown name prefix {prefix:#x}")
    reader.name()


def _extern_desc(reader: _Reader) -> tuple[int, int]:
    kind = reader.byte()
    if kind == 0x00:
        if reader.byte() != _CORE_SORT_MODULE:
            raise reader.fail("a core import that is not a module")
        reader.uleb()
        return (_SORT_CORE, _CORE_SORT_MODULE)
    if kind in (0x01, 0x04, 0x05):
        reader.uleb()
    elif kind in (0x02, 0x03):
        bound = reader.byte()
        if bound == 0x00 or (kind == 0x02 and bound == 0x01):
            reader.sleb()
        elif not (kind == 0x03 and bound == 0x01):
            raise reader.fail(f"unknown bound {bound:#x}")
    else:
        raise reader.fail(f"unknown extern kind {kind:#x}")
    return (kind, 0)


def _imports(reader: _Reader, scope: _Scope) -> None:
    for _ in range(reader.count()):
        _extern_name(reader)
        _append(scope, _extern_desc(reader), _NOTHING)


def _exports(reader: _Reader, scope: _Scope) -> None:
    for _ in range(reader.count()):
        _extern_name(reader)
        sort = _sort(reader)
        index = reader.uleb()
        described = reader.byte()
        if described == 0x01:
            _extern_desc(reader)
        elif described != 0x00:
            raise reader.fail(f"bad export type marker {described:#x}")
        if sort == (_SORT_CORE, _CORE_SORT_MODULE):
            scope.modules.append(_resolve(scope.modules, index, reader, "core module"))
        elif sort == (_SORT_COMPONENT, 0):
            scope.components.append(_resolve(scope.components, index, reader, "component"))
