"""Privileged host plumbing shared by the harness: preconditions, commands, mounts, processes."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support import die_with_parent


class VirtualFleetError(RuntimeError):
    """The host cannot build or run a virtual fleet, or one of its steps failed."""


def require_root(*tools: str) -> None:
    """Fails with a message naming the missing privilege or package before anything changes."""
    if os.geteuid() != 0:
        raise VirtualFleetError("a virtual fleet needs root (mounts, namespaces, cgroups)")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise VirtualFleetError(
            f"missing {', '.join(missing)}: apt-get install systemd-container mmdebstrap"
        )


def run(argv: Sequence[str | Path], *, timeout: float = 120) -> str:
    """Runs a host command and returns its stdout; a failure carries the command's stderr.

    The command dies with this process, so a killed test run leaves no mmdebstrap behind.
    """
    done = subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=die_with_parent,
    )
    if done.returncode != 0:
        command = " ".join(str(arg) for arg in argv)
        raise VirtualFleetError(f"{command} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Mount:
    target: Path
    fstype: str
    source: str


def mounts() -> list[Mount]:
    """The mount table of this process's mount namespace, in mount order."""
    table = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        fstype, source = tail.split()[:2]
        table.append(Mount(Path(_unescape(fields.split()[4])), fstype, _unescape(source)))
    return table


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def unmount_below(path: Path) -> None:
    """Unmounts everything mounted at or under ``path``, deepest first.

    Needed before deleting a directory: ``rmtree`` would otherwise descend into a live
    ``/proc`` or an overlay and delete through it.
    """
    targets = {m.target for m in mounts() if m.target == path or path in m.target.parents}
    for target in sorted(targets, key=lambda t: len(t.parts), reverse=True):
        unmount(target)


def unmount(target: Path) -> None:
    """Unmounts one mount point; a busy one is detached lazily rather than left behind."""
    if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
        run(["umount", "--lazy", target])


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (its parent reaps it later)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def processes_named(name: str) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and command_name(int(p.name)) == name
    ]


def signal_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def terminate(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL whatever still runs after ``grace`` seconds."""
    pids = [pid for pid in pids if pid != os.getpid()]
    signal_all(pids, signal.SIGTERM)
    signal_all(_wait_for_exit(lambda: pids, grace), signal.SIGKILL)


def stop_cgroups(cgroups: Sequence[Path], *, supervisor: str, grace: float) -> None:
    """SIGTERMs each ``supervisor`` in ``cgroups``, then SIGKILLs what runs after ``grace``.

    The supervisor winds down what it runs (nspawn halts its guest); SIGKILL is the fallback.
    """
    members = functools.partial(cgroup_pids, cgroups)
    signal_all([pid for pid in members() if command_name(pid) == supervisor], signal.SIGTERM)
    signal_all(_wait_for_exit(members, grace), signal.SIGKILL)
    survivors = _wait_for_exit(members, 5.0)
    if survivors:
        raise VirtualFleetError(f"processes {survivors} in {cgroups} survived SIGKILL")


def _wait_for_exit(pids: Callable[[], Iterable[int]], timeout: float) -> list[int]:
    """Waits until none of ``pids()`` runs; returns those still running at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        running = [pid for pid in pids() if alive(pid)]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def cgroup_hierarchies() -> list[Path]:
    """The cgroup trees a node gets its own directory in: systemd's, cgroup2's and memory's.

    nspawn without a host systemd creates its ``payload`` and ``supervisor`` cgroups below
    its current one, so two containers sharing a cgroup would share those too. The memory
    tree only makes each node's usage visible (``memory.usage_in_bytes``).
    """
    return [
        m.target
        for m in mounts()
        if m.fstype == "cgroup2"
        or (m.fstype == "cgroup" and m.target.name in ("systemd", "memory"))
    ]


def cgroup_pids(cgroups: Iterable[Path]) -> list[int]:
    """Every process in the cgroup trees; a guest removes its own cgroups as it stops.

    A cgroup removed between listing and reading raises ENOENT, or ENODEV mid-removal.
    """
    pids: set[int] = set()
    for cgroup in cgroups:
        for directory, _, _ in os.walk(cgroup):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in Path(directory, "cgroup.procs").read_text().split())
    return sorted(pids)


def remove_cgroups(cgroups: Iterable[Path]) -> None:
    """Removes emptied cgroup trees, deepest directories first as the kernel requires."""
    for cgroup in cgroups:
        for directory, _, _ in sorted(os.walk(cgroup), key=lambda walked: -len(walked[0])):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(directory)


def join_cgroups(cgroups: Sequence[Path], *, with_parent: bool) -> Callable[[], None]:
    """A ``preexec_fn`` that moves the child into ``cgroups`` (and ties it to this process)."""

    def preexec() -> None:
        for cgroup in cgroups:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
        if with_parent:
            die_with_parent()

    return preexec
