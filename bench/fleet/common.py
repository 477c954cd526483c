"""What the fleet benchmarks share: paths, the machine, CPU accounting, builds, results.

Every figure is written to ``bench/results/fleet/<name>.json`` (raw) and ``<name>.md`` (its
section of ``bench/results/fleet.md``); ``run.sh`` joins the sections.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FLEET = Path(__file__).resolve().parent
REPO = FLEET.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "fleet"
WORK = RESULTS / "work"
VENV_BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def exit_on_sigterm() -> None:
    """``timeout`` and Ctrl-C alike unwind through ``finally``, which stops what we started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def machine() -> dict[str, object]:
    """Where and when the figures were taken, for the results' header."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit or "?",
    }


def machine_line(info: dict[str, object]) -> str:
    return (
        f"{info['date']}, {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}, commit {info['commit']}"
    )


# --- CPU accounting -------------------------------------------------------------------------


def _machine_busy() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal


def _processes() -> dict[int, tuple[str, int, int]]:
    """pid → (command name, parent pid, own + reaped children's CPU jiffies)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        found[int(entry.name)] = (name, int(fields[1]), ticks)
    return found


def renice_tree(pid: int, nice: int) -> int:
    """Sets ``nice`` on ``pid`` and every process below it (a job worker's forked children,
    which re-forks inherit); returns how many. A deployment does the same with ``Nice=``."""
    processes = _processes()
    tree, changed = {pid}, True
    while changed:
        changed = False
        for child, (_, parent, _) in processes.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    for member in tree:
        os.setpriority(os.PRIO_PROCESS, member, nice)
    return len(tree)


class CpuMeter:
    """Splits the machine's CPU time over an interval into ours and everyone else's.

    "Ours" is this script and every process below it (gunicorn and its workers, wrk,
    device hosts) plus processes whose command name is listed (``postgres``, which runs
    under another parent). A process that exits meanwhile is still counted: its time moves
    into its parent's reaped-children total. Figures are percent of one core.
    """

    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self._names = names
        self._start_busy, self._start_ours = _machine_busy(), self._ours()
        self._started = time.monotonic()

    def _ours(self) -> dict[str, int]:
        """Our CPU jiffies so far, by command name."""
        processes = _processes()
        mine = {os.getpid()}
        changed = True
        while changed:
            changed = False
            for pid, (name, parent, _) in processes.items():
                if pid not in mine and (parent in mine or name in self._names):
                    mine.add(pid)
                    changed = True
        by_name: dict[str, int] = {}
        for pid in mine & processes.keys():
            name, _, ticks = processes[pid]
            name = "bench" if pid == os.getpid() else name  # with the children it reaped (wrk)
            by_name[name] = by_name.get(name, 0) + ticks
        return by_name

    def stop(self) -> dict[str, object]:
        busy = _machine_busy() - self._start_busy
        now = self._ours()
        per_pct = (time.monotonic() - self._started) * CLOCK_TICKS / 100
        spent = {name: now[name] - self._start_ours.get(name, 0) for name in now}
        ours = sum(spent.values())
        return {
            "ours_pct": round(ours / per_pct, 1),
            "others_pct": round(max(0, busy - ours) / per_pct, 1),
            "by_command_pct": {
                name: round(ticks / per_pct, 1)
                for name, ticks in sorted(spent.items(), key=lambda item: -item[1])
                if ticks / per_pct >= 1
            },
        }


def speed_probe() -> float:
    """Milliseconds for a fixed pure-Python loop, best of three: a slower figure means the
    VM's host gave us less CPU than usual, which "others" cannot show."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def cpu_text(cpu: dict[str, object]) -> str:
    """``gunicorn 150, bench 20; others 1`` (percent of one core).

    "bench" is the benchmark script with the children it has waited for (wrk, manage.py).
    """
    ours = ", ".join(f"{name} {pct:.0f}" for name, pct in cpu["by_command_pct"].items())  # type: ignore[attr-defined]
    return f"{ours}; others {float(cpu['others_pct']):.0f}"  # type: ignore[arg-type]


def wait_for_quiet(limit_s: float | None = None, threshold_pct: float = 25.0) -> float:
    """Waits (up to ``$BENCH_QUIET_WAIT_S``, default 60 s) until other work uses under
    ``threshold_pct`` of one core over two seconds; returns the last figure."""
    limit = float(os.environ.get("BENCH_QUIET_WAIT_S", "60")) if limit_s is None else limit_s
    deadline = time.monotonic() + limit
    while True:
        meter = CpuMeter()
        time.sleep(2)
        others = float(meter.stop()["others_pct"])  # type: ignore[arg-type]
        if others < threshold_pct or time.monotonic() >= deadline:
            if others >= threshold_pct:
                print(f"  (machine still busy: others use {others:.0f} % of a core)")
            return others
        print(f"  waiting for a quiet machine (others use {others:.0f} % of a core)")


# --- plugins ----------------------------------------------------------------------------------


def build_variant(
    name: str, label: str, *, replace: dict[str, str] | None = None, version: str | None = None
) -> Path:
    """Copies tests/plugins/<name> (or plugins/<name>), edits it like tests/conftest.py's
    ``build`` fixture, and builds it with ``device-host build`` (the build cache makes a
    repeat free). Returns the built folder."""
    source = REPO / "tests" / "plugins" / name
    if not source.is_dir():
        source = REPO / "plugins" / name
    target = WORK / "built" / label
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.wasm", "__pycache__"))
    app = target / "app.py"
    text = app.read_text()
    for old, new in (replace or {}).items():
        if old not in text:
            raise SystemExit(f"bench: {old!r} is not in {name}/app.py")
        text = text.replace(old, new)
    app.write_text(text)
    if version is not None:
        manifest = target / "manifest.toml"
        lines = [
            f'version = "{version}"' if line.startswith("version") else line
            for line in manifest.read_text().splitlines()
        ]
        manifest.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [str(VENV_BIN / "device-host"), "build", str(target)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return target


def component_of(folder: Path) -> Path:
    wasm = sorted(folder.glob("*.wasm"))
    if len(wasm) != 1:
        raise SystemExit(f"bench: expected one component in {folder}, found {wasm}")
    return wasm[0]


# --- logs and results -------------------------------------------------------------------------


def log_time(line: str) -> float | None:
    """The wall-clock time of a ``logging`` line (``%(asctime)s`` at its start)."""
    match = LOG_TIME.match(line)
    if match is None:
        return None
    return dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def write_results(name: str, data: dict[str, object], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown)


def run_logged(args: list[str], log: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs a command, appends its output to ``log``, fails with that output."""
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done  # type: ignore[no-any-return]
