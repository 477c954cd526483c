"""A device host's memory while it installs the 18 MB dashboard: delivered compiled vs compiling.

One control plane (gunicorn and its job worker) on loopback; for each mode a fresh device
host in signed mode with an empty compiled cache, enrolled and idle, then given dashboard
with ``manage.py publish_plugin <folder> --assign device:<it>``:

* **delivered**: dashboard 1.0.1; the control plane compiles it, the device downloads the
  signed artifact and deserializes it;
* **baseline**: dashboard 1.0.2 with the x86_64 class disabled, so the device compiles it
  (in a child process, which is counted: it is the device's memory too).

Every 20 ms the sampler reads ``VmRSS`` and ``VmHWM`` from ``/proc/<pid>/status`` of the
host and of every process below it. Steady state is the host's median RSS over the
``--steady`` seconds before the publish; the peak is the largest sampled sum of host and
children, and the host's own ``VmHWM`` (exact, the kernel's high-water mark) after the install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_delivery import MODES, Pollers, TimedControlPlane, signed_host, timed_manage
from bench_publish import variant
from common import (
    WORK,
    Table,
    exit_on_sigterm,
    machine,
    machine_line,
    wait_for_quiet,
    write_results,
)

from tests.support import HostProcess, wait_until

SAMPLE_S = 0.02


def _status_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in KiB, or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except KeyError:
        return None  # a zombie has no memory lines


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``; each thread lists the children it started itself."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        children = []
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        found += children
        queue += children
    return found


@dataclass
class Sampler:
    """Samples a process tree's memory every ``SAMPLE_S`` until stopped."""

    pid: int
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    """(time, host VmRSS, host + children VmRSS) in KiB."""
    child_hwm_kib: int = 0
    children_seen: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=5)

    def _run(self) -> None:
        seen: set[int] = set()
        while not self._stop.is_set():
            host = _status_kib(self.pid)
            if host is None:
                return
            total = host[0]
            for child in _descendants(self.pid):
                status = _status_kib(child)
                if status is not None:
                    seen.add(child)
                    total += status[0]
                    self.child_hwm_kib = max(self.child_hwm_kib, status[1])
            self.children_seen = len(seen)
            self.samples.append((time.time(), host[0], total))
            time.sleep(SAMPLE_S)


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steady", type=float, default=3.0, help="seconds of steady state")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per install")
    args = parser.parse_args()

    work = WORK / "install-memory"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print("building dashboard 1.0.1 and 1.0.2")
    versions = {"delivered": variant("1.0.1"), "baseline": variant("1.0.2")}

    control_plane = TimedControlPlane(work / "control-plane")
    runs: dict[str, dict[str, object]] = {}
    try:
        control_plane.set_up()
        control_plane.start()
        token = control_plane.enrollment_token(uses=len(MODES))
        for mode in MODES:
            control_plane.set_mode(mode)
            device = signed_host(work / f"pi-{mode}", control_plane, token)
            try:
                device.start()
                runs[mode] = install(control_plane, device, *versions[mode], mode, args)
            finally:
                device.stop()
    finally:
        control_plane.stop()
    data = {"machine": machine(), "sample_s": SAMPLE_S, "runs": runs}
    write_results("install_memory", data, markdown(data))


def install(
    control_plane: TimedControlPlane,
    device: HostProcess,
    folder: Path,
    marker: str,
    mode: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    """Publishes ``folder`` to ``device`` alone and samples its memory until it serves."""
    assert device.process is not None
    pid = device.process.pid
    wait_for_quiet()
    load = os.getloadavg()[0]
    name = device.workdir.name
    print(f"{mode}: {name} idle for {args.steady} s, then publish {folder.name}")
    with Sampler(pid) as sampler:
        time.sleep(args.steady)
        published = time.time()
        pollers = Pollers([device], "/", marker)
        pollers.start()
        publish = timed_manage(
            control_plane, device.workdir / "publish.log", "publish_plugin", str(folder),
            "--assign", f"device:{name}",
        )  # fmt: skip
        try:
            wait_until(pollers.done, args.timeout, f"{name} serving {folder.name}")
        finally:
            pollers.stop()
        serving = pollers.serving[0]
        time.sleep(1.0)
    hwm = _status_kib(pid)
    before = [s for s in sampler.samples if s[0] < published]
    during = [s for s in sampler.samples if s[0] >= published]
    steady = statistics.median(s[1] for s in before)
    peak_host = max(s[1] for s in during)
    peak_tree = max(s[2] for s in during)
    return {
        "mode": mode,
        "plugin": folder.name,
        "component_bytes": sum(p.stat().st_size for p in folder.glob("*.wasm")),
        "steady_rss_mib": round(steady / 1024, 1),
        "peak_host_rss_mib": round(peak_host / 1024, 1),
        "peak_tree_rss_mib": round(peak_tree / 1024, 1),
        "host_hwm_mib": None if hwm is None else round(hwm[1] / 1024, 1),
        "child_hwm_mib": round(sampler.child_hwm_kib / 1024, 1),
        "children_seen": sampler.children_seen,
        "after_rss_mib": round(during[-1][1] / 1024, 1),
        "delta_tree_mib": round((peak_tree - steady) / 1024, 1),
        "delta_host_hwm_mib": None if hwm is None else round((hwm[1] - steady) / 1024, 1),
        "publish_to_serving_s": None if serving is None else round(serving - published, 2),
        "publish_seconds": publish["seconds"],
        "samples": len(sampler.samples),
        "load_1min": load,
    }


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    runs = data["runs"]
    rows = [
        ("steady state, host RSS (median before the publish)", "steady_rss_mib"),
        ("peak during the install, host alone (sampled)", "peak_host_rss_mib"),
        ("peak during the install, host + children (sampled)", "peak_tree_rss_mib"),
        ("host VmHWM after the install (exact)", "host_hwm_mib"),
        ("compile child's VmHWM (sampled)", "child_hwm_mib"),
        ("RSS once serving", "after_rss_mib"),
        ("**peak (host + children) - steady**", "delta_tree_mib"),
        ("host VmHWM - steady", "delta_host_hwm_mib"),
        ("publish → serving, s", "publish_to_serving_s"),
    ]
    table = Table(
        ["MiB", "delivered", "baseline (device compiles)"],
        [[label, str(runs["delivered"][key]), str(runs["baseline"][key])] for label, key in rows],
    )
    loads = ", ".join(f"{mode} {run['load_1min']:.1f}" for mode, run in runs.items())
    return (
        f"### Device memory while installing the dashboard\n\n"
        f"{machine_line(data['machine'])}. A fresh device host per mode (empty compiled "
        f"cache, no plugin), sampled every {int(data['sample_s'] * 1000)} ms from /proc; the "
        f"component is {runs['delivered']['component_bytes']:,} bytes. Load average at the "
        f"start: {loads}.\n\n{table.markdown()}\n"
    )


if __name__ == "__main__":
    main()
