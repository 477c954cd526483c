"""Time from ``scripts/publish plugins/dashboard`` to the device's ``/`` serving the new page.

``scripts/publish`` is ``manage.py publish_plugin <folder> --assign all``; this runs that
command against a control plane (gunicorn and its job worker) and one device host in signed
mode, on loopback, with the build excluded (the variants are built first). Dashboard 1.0.0
is rolled out; then, while ``/`` is polled every 50 ms for the new title:

* **delivered**: dashboard 1.0.1; the worker's check compiles it, the device deserializes it;
* **baseline**: dashboard 1.0.2 with the x86_64 class disabled, so the device compiles it.

The split: upload (command start → stored), check (stored → verdict: queue wait and the
native compile), approve + sign + push (verdict → the device's 202), device install (202 →
the first poll showing the new title: download, verify, compile or not, load, swap). The
finer split of each comes from the same sources as ``bench_delivery.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from bench_delivery import (
    MODES,
    Pollers,
    TimedControlPlane,
    ms,
    ms_or_dash,
    roll_out,
    signed_host,
)
from common import (
    WORK,
    Table,
    build_variant,
    cpu_text,
    exit_on_sigterm,
    machine,
    machine_line,
    write_results,
)

from tests.support import HostProcess, wait_until

TITLE = 'TITLE = "WASI Python Dashboard"'
DEVICE_STEPS = {
    "wait (202 → download starts)": "wait_ms",
    "download": "download_ms",
    "verify": "verify_ms",
    "compile on the device": "compile_ms",
    "load (deserialize or read the fresh .cwasm) + check + instantiate + self-check": (
        "check_instantiate_ms"
    ),
    "swap (serving line → first poll)": "swap_ms",
}


def variant(version: str) -> tuple[Path, str]:
    """(the built folder, the ``<h1>`` its page shows)."""
    title = f"WASI Python Dashboard {version}"
    folder = build_variant(
        "dashboard", f"dashboard-{version}", replace={TITLE: f'TITLE = "{title}"'}, version=version
    )
    return folder, f"<h1>{title}</h1>"


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=600, help="seconds per rollout")
    args = parser.parse_args()

    work = WORK / "publish"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print("building dashboard 1.0.0, 1.0.1 and 1.0.2")
    first = build_variant("dashboard", "dashboard-1.0.0")
    versions = {"delivered": variant("1.0.1"), "baseline": variant("1.0.2")}

    control_plane = TimedControlPlane(work / "control-plane")
    device: HostProcess | None = None
    runs: dict[str, dict[str, object]] = {}
    try:
        control_plane.set_up()
        control_plane.start()
        device = signed_host(work / "pi-1", control_plane, control_plane.enrollment_token())
        device.start()
        print("rolling out dashboard 1.0.0")
        control_plane.manage("publish_plugin", str(first), "--assign", "all")
        pollers = Pollers([device], "/", "<h1>WASI Python Dashboard</h1>")
        pollers.start()
        wait_until(pollers.done, args.timeout, "the device serving dashboard 1.0.0")
        pollers.stop()
        for mode in MODES:
            control_plane.set_mode(mode)
            folder, marker = versions[mode]
            print(f"{mode}: publish_plugin {folder} --assign all")
            runs[mode] = roll_out(
                control_plane, [device], folder, mode, "/", marker, work,
                args.timeout,
            )  # fmt: skip
    finally:
        if device is not None:
            device.stop()
        control_plane.stop()
    data: dict[str, object] = {"machine": machine(), "load_average": os.getloadavg(), "runs": runs}
    write_results("publish", data, markdown(data))


def split(run: dict) -> dict[str, int | None]:  # type: ignore[type-arg]
    """The four phases a person publishing sees, in ms."""
    steps, device = run["steps"], run["per_device"][0]
    started, uploaded, checked = steps["started"], steps["uploaded"], steps["checked"]
    serving = (
        None if device["from_upload_ms"] is None else started + device["from_upload_ms"] / 1000
    )
    pushed = None
    if steps["desired"] is not None and device["push_ms"] is not None:
        pushed = steps["desired"] + device["push_ms"] / 1000

    def span(a: float | None, b: float | None) -> int | None:
        return None if a is None or b is None else round((b - a) * 1000)

    return {
        "upload (command start, Django start-up included → stored)": span(started, uploaded),
        "check (queue wait + native compile)": span(uploaded, checked),
        "approve + sign + push (verdict → the device's 202)": span(checked, pushed),
        "device install (202 → `/` shows the new page)": span(pushed, serving),
        "**publish → new page**": span(started, serving),
        "**approval (verdict) → new page**": span(checked, serving),
    }


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    runs = data["runs"]
    delivered, baseline = split(runs["delivered"]), split(runs["baseline"])
    rows = []
    for name, value in delivered.items():
        other = baseline[name]
        ratio = f"{other / value:.1f}x" if value and other and name.startswith("**") else ""
        rows.append([name, ms(value), ms(other), ratio])
    table = Table(["step (ms)", "delivered", "baseline (device compiles)", "ratio"], rows)
    first = {mode: run["per_device"][0] for mode, run in runs.items()}
    inside = Table(
        ["in the device install (ms)", "delivered", "baseline"],
        [
            [label, ms_or_dash(first["delivered"][key]), ms_or_dash(first["baseline"][key])]
            for label, key in DEVICE_STEPS.items()
        ],
    )
    notes = "\n".join(
        f"* {mode}: `publish_plugin {run['plugin']}` {run['publish']['seconds']:.1f} s; "
        f"worker compiles: "
        + (
            ", ".join(
                f"{a['class']} {a['compile_seconds']} s, peak {a['peak_rss_mib']} MiB"
                for a in run["artifacts"]
            )
            or "none"
        )
        + f"; CPU % of one core: {cpu_text(run['cpu'])}; load average {run['load_1min']:.1f}"
        for mode, run in runs.items()
    )
    return (
        f"### `scripts/publish plugins/dashboard` to the new page\n\n"
        f"{machine_line(data['machine'])}. `manage.py publish_plugin <dashboard> --assign all` "
        f"(what `scripts/publish` runs; the build excluded) against one device host; "
        f'"new page" is the first poll of `/` (every 50 ms) showing the new title.\n\n'
        f"{notes}\n\n{table.markdown()}\n\n{inside.markdown()}\n"
    )


if __name__ == "__main__":
    main()
