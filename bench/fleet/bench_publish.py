"""Time from ``scripts/publish plugins/dashboard`` to the device's ``/`` serving the new page,
told by a notice over MQTT, against heartbeats alone.

``scripts/publish`` is ``manage.py publish_plugin <folder> --assign all``; this runs that
command against a control plane (gunicorn and its job worker), a Mosquitto over TLS and one
device host in signed mode subscribed to its topic, on loopback, with the build excluded
(the variants are built first) and the production heartbeat interval on both sides (10 s,
``--heartbeat-interval``). Dashboard 1.0.0 is rolled out; then, while ``/`` is polled every
50 ms for the new title:

* **notice**: dashboard 1.0.1; the worker publishes "desired state N is ready", the device's
  next heartbeat is due at once and its answer carries the envelope;
* **heartbeat** (the baseline): dashboard 1.0.2 with the broker stopped and the control
  plane restarted without it: the device learns at its next regular heartbeat.

The split: upload (command start → stored), check (stored → verdict: queue wait and the
native compile), approve + sign + assign (verdict → desired state written), notice (→ the
broker's PUBACK), device (→ the first poll showing the new title: the early or the next
heartbeat, download, verify, load, swap). The finer split of the device's part comes from
the same sources as ``bench_delivery.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from bench_delivery import (
    CHANNELS,
    HEARTBEAT_INTERVAL_S,
    Pollers,
    TimedControlPlane,
    channels_connected,
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
    "fetch (notice → download starts; heartbeat only: written → download starts)": "fetch_ms",
    "download": "download_ms",
    "verify": "verify_ms",
    "load (deserialize) + check + instantiate + self-check": "load_ms",
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
    parser.add_argument(
        "--heartbeat-interval", type=float, default=HEARTBEAT_INTERVAL_S, help="seconds"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per rollout")
    args = parser.parse_args()

    work = WORK / "publish"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print("building dashboard 1.0.0, 1.0.1 and 1.0.2")
    first = build_variant("dashboard", "dashboard-1.0.0")
    versions = {"notice": variant("1.0.1"), "heartbeat": variant("1.0.2")}

    control_plane = TimedControlPlane(
        work / "control-plane", heartbeat_interval_s=args.heartbeat_interval
    )
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
        wait_until(lambda: channels_connected([device]), 120, "the notice channel connected")
        for mode in CHANNELS:
            control_plane.set_channel(mode)
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
    data: dict[str, object] = {
        "machine": machine(),
        "load_average": os.getloadavg(),
        "heartbeat_interval_s": args.heartbeat_interval,
        "runs": runs,
    }
    write_results("publish", data, markdown(data))


def split(run: dict) -> dict[str, int | None]:  # type: ignore[type-arg]
    """The phases a person publishing sees, in ms."""
    steps, device = run["steps"], run["per_device"][0]
    started, uploaded, checked, desired = (
        steps["started"], steps["uploaded"], steps["checked"], steps["desired"],
    )  # fmt: skip
    serving = (
        None if device["from_upload_ms"] is None else started + device["from_upload_ms"] / 1000
    )
    noticed = None
    if desired is not None and device["notice_ms"] is not None:
        noticed = desired + device["notice_ms"] / 1000

    def span(a: float | None, b: float | None) -> int | None:
        return None if a is None or b is None else round((b - a) * 1000)

    return {
        "upload (command start, Django start-up included → stored)": span(started, uploaded),
        "check (queue wait + native compile)": span(uploaded, checked),
        "approve + sign + assign (verdict → desired state written)": span(checked, desired),
        "notice (written → the broker's PUBACK)": span(desired, noticed),
        "device (→ `/` shows the new page: heartbeat, download, install)": span(
            noticed or desired, serving
        ),
        "**publish → new page**": span(started, serving),
        "**approval (verdict) → new page**": span(checked, serving),
    }


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    runs = data["runs"]
    notice, heartbeat = split(runs["notice"]), split(runs["heartbeat"])
    rows = []
    for name, value in notice.items():
        other = heartbeat[name]
        ratio = f"{other / value:.1f}x" if value and other and name.startswith("**") else ""
        rows.append([name, ms_or_dash(value), ms_or_dash(other), ratio])
    table = Table(["step (ms)", "notice", "heartbeat only", "heartbeat / notice"], rows)
    first = {mode: run["per_device"][0] for mode, run in runs.items()}
    inside = Table(
        ["in the device's part (ms)", "notice", "heartbeat only"],
        [
            [label, ms_or_dash(first["notice"][key]), ms_or_dash(first["heartbeat"][key])]
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
        f"(what `scripts/publish` runs; the build excluded) against one device host "
        f"subscribed to its topic on Mosquitto over TLS, heartbeat interval "
        f"{data['heartbeat_interval_s']:g} s on both sides; notice: with the broker; heartbeat "
        f"only: the broker stopped and the control plane restarted without it. "
        f'"new page" is the first poll of `/` (every 50 ms) showing the new title.\n\n'
        f"{notes}\n\n{table.markdown()}\n\n{inside.markdown()}\n"
    )


if __name__ == "__main__":
    main()
