"""Medians over the runs in a folder of provisioning.json files, as a Markdown table."""

from __future__ import annotations

import json
import platform
import statistics
import sys
from pathlib import Path


def main(folder: Path) -> None:
    runs = [json.loads(path.read_text()) for path in sorted(folder.glob("run-*.json"))]
    gaps = [max(run["upgrade_dashboard_gap_s"].values()) for run in runs]
    rows = [
        (
            "site.yml, 2 app servers + PostgreSQL + Mosquitto + 3 devices behind NAT, bare images",
            "provision_s",
            "s",
        ),
        ("site.yml again (changed=0)", "second_run_s", "s"),
        (
            "approval through the second app server alone, to every device",
            "approval_via_second_app_server_s",
            "s",
        ),
        ("assignment to every device (MQTT notice)", "assignment_to_every_device_s", "s"),
        ("assignment with the broker stopped (heartbeats)", "broker_down_convergence_s", "s"),
        ("assignment with both app servers reloaded mid fan-out", "reload_fan_out_s", "s"),
        ("upgrade.yml, 3 devices (stage + 3 batches)", "upgrade_s", "s"),
    ]
    print(f"{len(runs)} runs on {platform.node()}, {platform.machine()}; medians (min-max)\n")
    print("| what | figure |\n|---|---|")
    for label, key, unit in rows:
        values = [run[key] for run in runs if key in run]
        if not values:
            continue
        print(
            f"| {label} | {statistics.median(values):.1f} {unit} "
            f"({min(values):.1f}-{max(values):.1f}) |"
        )
    print(
        f"| longest dashboard gap on any host during the upgrade | "
        f"{statistics.median(gaps):.2f} s ({min(gaps):.2f}-{max(gaps):.2f}) |"
    )
    loads = [run["upgrade_dashboard_loads"] for run in runs]
    print(
        f"| dashboard loads during the upgrade (all failed: 0) | {statistics.median(loads):.0f} |"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
