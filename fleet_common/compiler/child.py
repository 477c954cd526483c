"""The compiler process: compiles one component for one engine, or reports an engine's key.

It runs natively (``sys.executable``) or in an emulated arm64 Python under qemu-user
(`fleet_common.compiler.emulation`), so it imports only the stdlib, wasmtime and
pure-Python parts of `fleet_common`. It lowers its own priority, caps its data segment,
dies with the process that started it, writes the artifact atomically and answers with
one JSON object on stdout (`fleet_common.compiler.run` is the other side):

    compile <source> <sha256> <artifact-or-empty> <settings-json> <data-limit>
        -> {"surface", "engine_key", "artifact_sha256", "artifact_size", "peak_rss_kib",
            "cpu_seconds"}
    engine-key <settings-json>
        -> {"engine_key": ..., "target": ..., "features": [...]}

Exit status 3 means the component itself is at fault (stderr's last line says why).
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
import sys
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from fleet_common.atomic import atomic_write_bytes
from fleet_common.compiler.engines import engine_config, engine_key
from fleet_common.compiler.settings import EngineSettings
from fleet_common.compiler.surface import component_surface

COMPILE_NICENESS = 10
INVALID = 3
"""Exit status of a child that found the component invalid."""
ORPHANED = 4


def first_line(exc: Exception) -> str:
    """wasmtime's error text in one line: its headline and the first cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next((line for line in lines[1:] if not line.startswith("Caused by")), "")
    return f"{lines[0]} ({detail})" if detail and lines else (lines[0] if lines else repr(exc))


def _die_with_parent() -> None:
    """A compile is only wanted by the process that asked: when it dies (``kill -9`` in an
    upgrade, a killed job worker), the compile must not go on taking a core and 400 MB."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit(ORPHANED)


def _compile(source: Path, sha256: str, artifact: str, settings: EngineSettings) -> int:
    engine = wasmtime.Engine(engine_config(settings))
    component = None
    if artifact and Path(artifact).exists():
        with contextlib.suppress(wasmtime.WasmtimeError):
            component = Component.deserialize_file(engine, artifact)
    if component is None:
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            print(f"{source} is not the component with sha256 {sha256}", file=sys.stderr)
            return INVALID
        try:
            component = Component(engine, data)
        except wasmtime.WasmtimeError as exc:
            print(f"not a valid component: {first_line(exc)}", file=sys.stderr)
            return INVALID
        del data
        if artifact:
            atomic_write_bytes(Path(artifact), bytes(component.serialize()))
    answer: dict[str, object] = {
        "surface": component_surface(engine, component).to_json(),
        "engine_key": engine_key(engine),
    }
    if artifact:
        digest = hashlib.sha256()
        with open(artifact, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        answer["artifact_sha256"] = digest.hexdigest()
        answer["artifact_size"] = Path(artifact).stat().st_size
    usage = resource.getrusage(resource.RUSAGE_SELF)
    answer["peak_rss_kib"] = usage.ru_maxrss
    answer["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    json.dump(answer, sys.stdout)
    return 0


def _engine_key(settings: EngineSettings) -> int:
    engine = wasmtime.Engine(engine_config(settings))
    answer = {
        "engine_key": engine_key(engine),
        "target": settings.target,
        "features": list(settings.features),
    }
    json.dump(answer, sys.stdout)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compile_command = commands.add_parser("compile")
    for name in ("source", "sha256", "artifact", "settings"):
        compile_command.add_argument(name)
    compile_command.add_argument("data_limit", type=int)
    key_command = commands.add_parser("engine-key")
    key_command.add_argument("settings")
    args = parser.parse_args()
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(COMPILE_NICENESS)
    settings = EngineSettings.from_json(args.settings)
    if args.command == "engine-key":
        sys.exit(_engine_key(settings))
    resource.setrlimit(resource.RLIMIT_DATA, (args.data_limit, args.data_limit))
    sys.exit(_compile(Path(args.source), args.sha256, args.artifact, settings))


if __name__ == "__main__":
    main()
