"""Running the compiler process (`fleet_common.compiler.child`) and reading its answer.

A cold compile of an 18 MB componentize-py component peaks at 380 to 500 MB, and glibc
keeps most of that in the compiling process long after; run in a child, the caller (a
device host, a control plane job worker) keeps only what it maps afterwards. For another
architecture the child is an emulated Python (`emulation.emulated_python`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_common.compiler.child import INVALID
from fleet_common.compiler.settings import EngineSettings
from fleet_common.contract.signatures import Surface

COMPILE_TIMEOUT_S = 900.0
"""A Pi 3 compiles an 18 MB component in minutes; a compile still running after this is stuck."""
COMPILE_DATA_LIMIT = 2 << 30
"""RLIMIT_DATA of the child: about five times a componentize-py compile's peak (RLIMIT_AS would
count the address space wasmtime reserves but never touches)."""
KEY_TIMEOUT_S = 120.0
"""An emulated Python takes seconds to start and import wasmtime."""


class CompileFailed(Exception):
    """The child could not compile; ``invalid`` says the component's bytes were at fault."""

    def __init__(self, reason: str, *, invalid: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.invalid = invalid


@dataclass(frozen=True)
class Interpreter:
    """How to start a Python that can import `fleet_common` and wasmtime."""

    argv: tuple[str, ...] = (sys.executable,)
    env: dict[str, str] | None = None
    emulated: bool = False
    """qemu-user ignores the child's RLIMIT_DATA: only the timeout and the worker's cgroup
    (systemd ``MemoryMax``) bound an emulated compile."""


@dataclass(frozen=True)
class CompileJob:
    """One compile: the source and its expected sha256, where the artifact goes, and limits."""

    source: Path
    sha256: str
    artifact: Path | None
    settings: EngineSettings
    interpreter: Interpreter = field(default_factory=Interpreter)
    data_limit: int = COMPILE_DATA_LIMIT
    timeout_s: float = COMPILE_TIMEOUT_S


@dataclass(frozen=True)
class Compiled:
    """What the child reports: the surface, its engine's key, and the artifact it wrote."""

    surface: Surface
    engine_key: str
    artifact_sha256: str | None
    artifact_size: int | None
    peak_rss_kib: int
    """Of the compiler process (under qemu-user: the emulator's own, what the host pays)."""
    cpu_seconds: float


def compile_in_child(job: CompileJob) -> Compiled:
    """Compiles ``job.source`` in a child; raises `CompileFailed`."""
    answer = _run(
        job.interpreter,
        [
            "compile",
            str(job.source),
            job.sha256,
            str(job.artifact or ""),
            job.settings.to_json(),
            str(job.data_limit),
        ],
        job.timeout_s,
        "emulated: bounded by its timeout and the worker's memory cgroup"
        if job.interpreter.emulated
        else f"its memory ceiling is {job.data_limit >> 20} MiB",
    )
    try:
        size = answer.get("artifact_size")
        return Compiled(
            surface=Surface.from_json(answer["surface"]),
            engine_key=str(answer["engine_key"]),
            artifact_sha256=None if job.artifact is None else str(answer["artifact_sha256"]),
            artifact_size=None if size is None else int(size),
            peak_rss_kib=int(answer.get("peak_rss_kib", 0)),
            cpu_seconds=float(answer.get("cpu_seconds", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CompileFailed(f"the compiler process answered badly: {exc}", invalid=False) from None


def engine_key_in_child(settings: EngineSettings, interpreter: Interpreter) -> str:
    """The key of an engine with ``settings``, from a child (the only safe way for a foreign
    target: the native wheel aborts the whole process on one)."""
    answer = _run(interpreter, ["engine-key", settings.to_json()], KEY_TIMEOUT_S, "")
    key = answer.get("engine_key")
    if not isinstance(key, str) or len(key) != 64:
        raise CompileFailed("the compiler process reported no engine key", invalid=False)
    return key


def _run(
    interpreter: Interpreter, arguments: list[str], timeout_s: float, ceiling: str
) -> dict[str, Any]:
    command = [*interpreter.argv, "-m", "fleet_common.compiler.child", *arguments]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
            env=interpreter.env,
        )
    except subprocess.TimeoutExpired:
        raise CompileFailed(f"compiling took longer than {timeout_s:g} s", invalid=False) from None
    except OSError as exc:
        raise CompileFailed(f"cannot start the compiler ({exc})", invalid=False) from None
    reason = _last_line(done.stderr)
    if done.returncode == INVALID:
        raise CompileFailed(reason, invalid=True)
    if done.returncode != 0:
        status = (
            f"killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"exit status {done.returncode}"
        )
        detail = f"{status}; {ceiling}" if ceiling else status
        raise CompileFailed(f"the compiler process failed ({detail}): {reason}", invalid=False)
    try:
        answer = json.loads(done.stdout)
    except ValueError as exc:
        raise CompileFailed(f"the compiler process answered badly: {exc}", invalid=False) from None
    if not isinstance(answer, dict):
        raise CompileFailed("the compiler process answered badly: not an object", invalid=False)
    return answer


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no message"
