"""Engines from settings, and the engine key that says which artifacts an engine loads.

wasmtime-py has no compatibility-hash API, but every artifact an engine serializes carries
the same ``.wasmtime.engine`` ELF section: wasmtime's version, the target, every
code-generation flag and ISA feature, and the wasm features. The SHA-256 of that section,
taken from an empty module, is an exact key on both sides: the control plane compiles for a
key, a device reports its own, and they match exactly when the artifact loads.
"""

from __future__ import annotations

import hashlib
import struct

import wasmtime

from fleet_common.compiler.settings import EngineSettings

ENGINE_SECTION = b".wasmtime.engine"
_EMPTY_MODULE = b"\0asm\x01\0\0\0"
_ELF64_LE = b"\x7fELF\x02\x01"


class ArtifactFormatError(ValueError):
    """Bytes that are not a wasmtime artifact this code can read."""


def engine_config(settings: EngineSettings) -> wasmtime.Config:
    """The configuration every engine with ``settings`` gets: devices' and compilers' alike.

    Epoch interruption is on so every call can be cut short; the target is always set, so
    no feature of the compiling CPU leaks into an artifact.
    """
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.cranelift_opt_level = settings.opt_level
    config.target = settings.target
    for feature in settings.features:
        config.cranelift_flag_enable(feature)
    return config


def engine_key(engine: wasmtime.Engine) -> str:
    """The hex SHA-256 of the engine section of an empty module compiled by ``engine`` (~1 ms)."""
    return section_key(bytes(wasmtime.Module(engine, _EMPTY_MODULE).serialize()))


def section_key(artifact: bytes) -> str:
    """The engine key recorded in a serialized artifact's ELF headers."""
    return hashlib.sha256(elf_section(artifact, ENGINE_SECTION)).hexdigest()


def elf_section(data: bytes, name: bytes) -> bytes:
    """The contents of the named section of a little-endian ELF64 file; bounds-checked."""
    if not data.startswith(_ELF64_LE) or len(data) < 64:
        raise ArtifactFormatError("not a little-endian ELF64 file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shentsize < 64 or shstrndx >= shnum or shoff + shnum * shentsize > len(data):
        raise ArtifactFormatError("section headers lie outside the file")

    def header(index: int) -> tuple[int, int, int]:
        fields = struct.unpack_from("<IIQQQQIIQQ", data, shoff + index * shentsize)
        name_offset, offset, size = fields[0], fields[4], fields[5]
        if offset + size > len(data):
            raise ArtifactFormatError(f"section {index} lies outside the file")
        return name_offset, offset, size

    _, names_at, names_size = header(shstrndx)
    names = data[names_at : names_at + names_size]
    for index in range(shnum):
        name_offset, offset, size = header(index)
        end = names.find(b"\0", name_offset)
        if end >= 0 and names[name_offset:end] == name:
            return data[offset : offset + size]
    raise ArtifactFormatError(f"no {name.decode()} section")
