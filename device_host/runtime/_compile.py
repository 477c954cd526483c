"""Compiles a component in a child process, so the memory a compile takes goes back with it.

A cold compile of an 18 MB componentize-py component peaks at 335 to 394 MB, and glibc keeps
most of that in the compiling process long after. Run in a child, the host (or a control
plane worker) keeps only what it maps afterwards with ``deserialize_file``. The child runs
at low CPU priority with a cap on its data segment and a deadline, compiles with the
parent's exact engine settings (the fingerprint is checked on both sides), writes the
artifact atomically and prints the component's surface as JSON. An artifact already in
place is only loaded, so validating the same bytes twice costs no compile.

`compile_in_child` is the parent side; `main` runs in the child.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from device_host.contract.signatures import Surface
from device_host.runtime._engine import EngineSettings, create_engine
from device_host.runtime._surface import component_surface
from device_host.storage.atomic import atomic_write_bytes

COMPILE_NICENESS = 10
COMPILE_TIMEOUT_S = 900.0
"""A Pi 3 compiles an 18 MB component in minutes; a compile still running after this is stuck."""
COMPILE_DATA_LIMIT = 2 << 30
"""RLIMIT_DATA of the child: about five times a componentize-py compile's peak (RLIMIT_AS would
count the address space wasmtime reserves but never touches)."""

_INVALID = 3
"""Exit status of a child that found the component invalid; stderr holds the reason."""


class CompileFailed(Exception):
    """The child could not compile; ``invalid`` says the component's bytes were at fault."""

    def __init__(self, reason: str, *, invalid: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.invalid = invalid


@dataclass(frozen=True)
class CompileJob:
    """One compile: the source and its expected sha256, where the artifact goes, and limits."""

    source: Path
    sha256: str
    artifact: Path | None
    settings: EngineSettings
    data_limit: int = COMPILE_DATA_LIMIT
    timeout_s: float = COMPILE_TIMEOUT_S


def compile_in_child(job: CompileJob) -> Surface:
    """Compiles ``job.source`` in a child; returns its surface; raises `CompileFailed`."""
    command = [
        sys.executable,
        "-c",
        "from device_host.runtime._compile import main; main()",
        str(job.source),
        job.sha256,
        str(job.artifact or ""),
        job.settings.cranelift_opt_level,
        job.settings.fingerprint(),
        str(job.data_limit),
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=job.timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        reason = f"compiling took longer than {job.timeout_s:g} s"
        raise CompileFailed(reason, invalid=False) from None
    reason = _last_line(done.stderr)
    if done.returncode == _INVALID:
        raise CompileFailed(reason, invalid=True)
    if done.returncode != 0:
        status = (
            f"killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"exit status {done.returncode}"
        )
        ceiling = f"its memory ceiling is {job.data_limit >> 20} MiB"
        raise CompileFailed(
            f"the compiler process failed ({status}; {ceiling}): {reason}", invalid=False
        )
    try:
        return Surface.from_json(json.loads(done.stdout))
    except ValueError as exc:
        raise CompileFailed(f"the compiler process answered badly: {exc}", invalid=False) from None


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no message"


def first_line(exc: Exception) -> str:
    """wasmtime's error text in one line: its headline and the first cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next((line for line in lines[1:] if not line.startswith("Caused by")), "")
    return f"{lines[0]} ({detail})" if detail and lines else (lines[0] if lines else repr(exc))


def _die_with_parent() -> None:
    """A compile is only wanted by the process that asked: when it dies (``kill -9`` in an
    upgrade, a crash), the compile must not go on taking both cores and 400 MB."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit(_INVALID + 1)


def _child(
    source: Path, sha256: str, artifact: str, opt_level: str, fingerprint: str, data_limit: int
) -> int:
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(COMPILE_NICENESS)
    resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
    settings = EngineSettings(cranelift_opt_level=opt_level)
    if settings.fingerprint() != fingerprint:
        print(f"engine fingerprint {settings.fingerprint()} is not {fingerprint}", file=sys.stderr)
        return 2
    engine = create_engine(settings)
    component = None
    if artifact and Path(artifact).exists():
        with contextlib.suppress(wasmtime.WasmtimeError):
            component = Component.deserialize_file(engine, artifact)
    if component is None:
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            print(f"{source} changed while it was being loaded", file=sys.stderr)
            return _INVALID
        try:
            component = Component(engine, data)
        except wasmtime.WasmtimeError as exc:
            print(f"not a valid component: {first_line(exc)}", file=sys.stderr)
            return _INVALID
        del data
        if artifact:
            atomic_write_bytes(Path(artifact), bytes(component.serialize()))
    json.dump(component_surface(engine, component).to_json(), sys.stdout)
    return 0


def main() -> None:
    """The child's entry point: ``source sha256 artifact opt_level fingerprint data_limit``."""
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("source", "sha256", "artifact", "opt_level", "fingerprint"):
        parser.add_argument(name)
    parser.add_argument("data_limit", type=int)
    args = parser.parse_args()
    status = _child(
        Path(args.source),
        args.sha256,
        args.artifact,
        args.opt_level,
        args.fingerprint,
        args.data_limit,
    )
    sys.exit(status)
