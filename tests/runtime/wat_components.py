"""Hand-made components in WAT, for what componentize-py cannot express (several memories)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WASM_TOOLS = Path(sys.executable).with_name("wasm-tools")
GROW_EXPORT = ("test:memory/grow", "grow")
"""The interface and function `memory_hog` exports: grow every memory by N pages."""


def assemble(wat: str, output: Path) -> Path:
    """Turns WAT text (a component or a core module) into a binary with wasm-tools."""
    source = output.with_suffix(".wat")
    source.write_text(wat)
    subprocess.run([str(WASM_TOOLS), "parse", str(source), "-o", str(output)], check=True)
    return output


def memory_hog(output: Path, *, memories: int, pages: int) -> Path:
    """A component whose one core module defines ``memories`` memories of ``pages`` each.

    Its export ``grow(n)`` asks every memory for ``n`` more pages, writes to every page
    it gained (so they are really resident) and returns how many pages it got in all,
    so a test sees exactly what the Store limits allowed.
    """
    defined = "\n".join(f"    (memory $m{i} {pages})" for i in range(memories))
    grow = "\n".join(
        f"      (local.set 2 (memory.grow $m{i} (local.get 0)))"
        f" (if (i32.ne (local.get 2) (i32.const -1)) (then"
        f" (local.set 1 (i32.add (local.get 1) (local.get 0)))"
        f" (memory.fill $m{i} (i32.mul (local.get 2) (i32.const 65536)) (i32.const 1)"
        f" (i32.mul (local.get 0) (i32.const 65536)))))"
        for i in range(memories)
    )
    interface, function = GROW_EXPORT
    return assemble(
        f"""(component
  (core module $m
{defined}
    (func (export "grow") (param i32) (result i32) (local i32 i32)
{grow}
      (local.get 1)))
  (core instance $i (instantiate $m))
  (func $grow (param "pages" u32) (result u32) (canon lift (core func $i "grow")))
  (instance $api (export "{function}" (func $grow)))
  (export "{interface}" (instance $api)))
""",
        output,
    )


HOARD_EXPORT = ("test:handles/hoard", "streams")
"""The interface and function `handle_hoarder` exports: take N stdout handles, keep them."""


def handle_hoarder(output: Path) -> Path:
    """A component that calls WASI ``get-stdout`` N times and never drops what it gets."""
    interface, function = HOARD_EXPORT
    return assemble(
        f"""(component
  (import "wasi:io/streams@0.2.0" (instance $streams
    (export "output-stream" (type (sub resource)))))
  (alias export $streams "output-stream" (type $os))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout
    (alias outer 1 $os (type $os2))
    (export "get-stdout" (func (result (own $os2))))))
  (core func $get (canon lower (func $stdout "get-stdout")))
  (core module $m
    (import "host" "get-stdout" (func $get (result i32)))
    (func (export "streams") (param i32) (result i32) (local i32)
      (block $done (loop $again
        (br_if $done (i32.ge_u (local.get 1) (local.get 0)))
        (drop (call $get))
        (local.set 1 (i32.add (local.get 1) (i32.const 1)))
        (br $again)))
      (local.get 1)))
  (core instance $hi (export "get-stdout" (func $get)))
  (core instance $i (instantiate $m (with "host" (instance $hi))))
  (func $f (param "n" u32) (result u32) (canon lift (core func $i "streams")))
  (instance $api (export "{function}" (func $f)))
  (export "{interface}" (instance $api)))
""",
        output,
    )
