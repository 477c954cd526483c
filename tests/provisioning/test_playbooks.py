"""site.yml and upgrade.yml against a virtual fleet: a control plane host and three devices.

Real hosts (systemd-nspawn), real SSH, real systemd units, real release bundles installed
offline; every address belongs to a namespace the fleet made. The tests run in order and
share the fleet: provision, provision again, upgrade, upgrade with one broken host.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.provisioning.conftest import FLEET_DIR, REPO, running_fleet
from tests.support import ARTIFACTS, wait_until
from tests.virtual_fleet import VirtualFleet

DEVICES = {"node1": "10.77.0.11", "node2": "10.77.0.12", "node3": "10.77.0.13"}
NODES = {"cp": "10.77.0.2", **DEVICES}
BIN = Path(sys.executable).parent
DIST = FLEET_DIR / "dist"
FIRST, SECOND, THIRD = "0.1.0", "0.1.1", "0.1.2"
FIGURES = ARTIFACTS / "provisioning.json"

pytestmark = pytest.mark.timeout(900)


def build_bundle(extra: str, out: Path, source: Path = REPO) -> Path:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/build-bundle"),
            extra,
            "--source",
            str(source),
            "--out",
            str(out),
            "--python",
            sys.executable,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def release_source(tmp: Path, version: str, *, broken: bool = False) -> Path:
    """This repository's files as git sees them, as release ``version``; ``broken`` won't start."""
    source = tmp / f"source-{version}{'-broken' if broken else ''}"
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    for name, pattern in (
        ("pyproject.toml", r'^version = ".*"$'),
        ("fleet_common/__init__.py", r'^__version__ = ".*"$'),
    ):
        path = source / name
        text, count = re.subn(
            pattern,
            pattern.split(" = ")[0].lstrip("^") + f' = "{version}"',
            path.read_text(),
            flags=re.M,
        )
        assert count == 1, name
        path.write_text(text)
    if broken:
        cli = source / "device_host/cli.py"
        cli.write_text(
            cli.read_text().replace(
                "def main(argv: list[str] | None = None) -> int:\n",
                "def main(argv: list[str] | None = None) -> int:\n"
                '    raise SystemExit("deliberately broken build")\n',
                1,
            )
        )
    return source


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Release bundles: 0.1.0 (both hosts), 0.1.1 and 0.1.2 devices, and a broken 0.1.2."""
    tmp = tmp_path_factory.mktemp("releases")
    build_bundle("control-plane", DIST)
    build_bundle("device", DIST)
    for version in (SECOND, THIRD):
        build_bundle("device", DIST, release_source(tmp, version))
    build_bundle("device", DIST / "broken", release_source(tmp, THIRD, broken=True))
    return {"good": DIST, "broken": DIST / "broken"}


@pytest.fixture(scope="module")
def fleet(base_image: Path) -> Iterator[VirtualFleet]:
    with running_fleet(base_image, NODES) as fleet:
        try:
            yield fleet
        finally:
            keep_journals(fleet)


def keep_journals(fleet: VirtualFleet) -> None:
    """Each host's service journal, into tests/artifacts/, for reading after a failure."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for node in NODES:
        unit = "control-plane" if node == "cp" else "device-host"
        journal = fleet.ssh(node, f"sudo journalctl -u {unit} --no-pager", check=False)
        (ARTIFACTS / f"provisioning-{node}.log").write_text(journal.stdout + journal.stderr)


@pytest.fixture(scope="module")
def inventory(fleet: VirtualFleet, bundles: dict[str, Path], build) -> Path:
    """The test fleet's inventory: real layout, simulated DHT22 and GPIO, short intervals."""
    root = fleet.workdir / "inventory"
    (root / "group_vars").mkdir(parents=True)
    (root / "host_vars").mkdir()
    hosts = {
        "all": {
            "children": {
                "control_plane": {"hosts": {"cp": {"ansible_host": NODES["cp"]}}},
                "devices": {"hosts": {n: {"ansible_host": a} for n, a in DEVICES.items()}},
            }
        }
    }
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts))
    everyone = {
        "pi_fleet_version": FIRST,
        "device_host_version": "{{ pi_fleet_version }}",
        "control_plane_version": FIRST,
        "device_host_bundle_dir": str(bundles["good"]),
        "control_plane_bundle_dir": str(bundles["good"]),
    }
    (root / "group_vars/all.yml").write_text(yaml.safe_dump(everyone))
    control_plane = {
        "base_service_groups": [],
        "control_plane_heartbeat_interval_s": 2,
        # The nodes are offline: no Debian mirror to build the arm64 compiler from.
        "control_plane_cross_compile": False,
        "control_plane_plugins": [{"path": str(build("dashboard")), "assign": "all"}],
    }
    (root / "group_vars/control_plane.yml").write_text(yaml.safe_dump(control_plane))
    devices = {
        "device_host_sensor_driver": "simulated",
        "device_host_gpio_driver": "simulated",
        "device_host_heartbeat_interval_s": 2,
    }
    (root / "group_vars/devices.yml").write_text(yaml.safe_dump(devices))
    return root


def playbook(
    fleet: VirtualFleet, inventory: Path, name: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Runs playbooks/<name> from the controller; returns the run and its wall time."""
    started = time.monotonic()
    done = fleet.controller(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(REPO / "playbooks" / name),
            *extra,
        ],
        env={
            **fleet.ansible_env(),
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.junit",
            "JUNIT_OUTPUT_DIR": str(ARTIFACTS / "ansible"),
            "JUNIT_TASK_CLASS": "yes",
        },
        capture_output=True,
        text=True,
        timeout=800,
        cwd=REPO,
    )
    log = fleet.workdir / f"{name}-{int(started)}.log"
    log.write_text(done.stdout + done.stderr)
    return done, time.monotonic() - started


def recap(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    """PLAY RECAP as {host: {"ok": n, "changed": n, "failed": n, ...}}."""
    return {
        match[1]: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match[2])}
        for match in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", done.stdout, re.M)
    }


def health(fleet: VirtualFleet, node: str) -> dict:
    answer = fleet.controller(
        ["curl", "-sf", "--max-time", "5", f"http://{NODES[node]}:3000/healthz"],
        capture_output=True,
        text=True,
    )
    return json.loads(answer.stdout) if answer.returncode == 0 else {}


def control_plane(fleet: VirtualFleet, code: str) -> object:
    """Runs Django shell code on the control plane host; returns what it prints as JSON."""
    done = fleet.ssh("cp", f"sudo control-plane-manage shell -v 0 -c {shlex.quote(code)}")
    return json.loads(done.stdout)


DEVICES_ON_CONTROL_PLANE = """
import json
from django.utils import timezone
from control_plane.devices.models import Device
print(json.dumps({d.name: {
    "host_version": d.host_version, "online": d.connectivity().value, "maintenance": d.maintenance,
    "seen_s_ago": (timezone.now() - d.last_seen).total_seconds() if d.last_seen else None,
    "events": [e.detail for e in d.events.filter(kind="maintenance").order_by("at")],
} for d in Device.objects.all()}))
"""


def record(**figures: object) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    FIGURES.write_text(json.dumps({**known, **figures}, indent=1))


def test_site_provisions_the_control_plane_and_every_device(fleet, inventory):
    done, seconds = playbook(fleet, inventory, "site.yml")
    record(provision_s=round(seconds, 1))

    assert done.returncode == 0, done.stdout[-6000:]
    for node, address in DEVICES.items():
        page = fleet.controller(
            ["curl", "-sf", f"http://{address}:3000/"], capture_output=True, text=True
        )
        assert page.returncode == 0 and "<h1>" in page.stdout, node
        assert health(fleet, node)["host_version"] == FIRST
    wait_until(
        lambda: all(
            d["seen_s_ago"] is not None and d["seen_s_ago"] < 10
            for d in control_plane(fleet, DEVICES_ON_CONTROL_PLANE).values()
        ),
        timeout=30,
        what="every device to heartbeat",
    )
    assert sorted(control_plane(fleet, DEVICES_ON_CONTROL_PLANE)) == sorted(DEVICES)


def test_secrets_stay_where_they_belong(fleet):
    signing_keys = {
        node: fleet.ssh(node, "sudo ls -R /etc/pi-fleet 2>/dev/null", check=False).stdout
        for node in NODES
    }
    service = fleet.ssh(
        "node1",
        "systemctl show device-host -p User -p NoNewPrivileges -p ProtectSystem -p MemoryMax",
    ).stdout

    assert "signing-key.pem" in signing_keys["cp"]
    assert all("signing-key.pem" not in signing_keys[node] for node in DEVICES)
    assert fleet.ssh("node1", "ls /etc/device-host/trusted-keys").stdout.strip().endswith(".pub")
    assert fleet.ssh("node1", "test -e /etc/device-host/enrollment.env", check=False).returncode
    assert "User=pi-fleet" in service and "NoNewPrivileges=yes" in service
    assert "gpio" in fleet.ssh("node1", "id -Gn pi-fleet").stdout.split()
    assert "ProtectSystem=strict" in service


def test_a_second_run_changes_nothing(fleet, inventory):
    done, seconds = playbook(fleet, inventory, "site.yml")
    record(second_run_s=round(seconds, 1))

    assert done.returncode == 0, done.stdout[-6000:]
    assert {host: counts["changed"] for host, counts in recap(done).items()} == {
        node: 0 for node in NODES
    }, done.stdout[-6000:]


def test_the_rolling_upgrade_moves_every_host_while_dashboards_keep_loading(fleet, inventory):
    compiled_before = {n: compiled_files(fleet, n) for n in DEVICES}
    urls = [f"http://{address}:3000/" for address in DEVICES.values()]
    watcher = subprocess.Popen(
        fleet.controller_argv(
            [sys.executable, str(Path(__file__).with_name("dashboard_watch.py")), *urls]
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None and watcher.stdout.readline() == "watching\n"
    done, seconds = playbook(fleet, inventory, "upgrade.yml", "-e", f"pi_fleet_version={SECOND}")
    loads, _ = watcher.communicate(timeout=30)
    watched = json.loads(loads)
    record(
        upgrade_s=round(seconds, 1),
        upgrade_dashboard_gap_s={url: r["longest_gap_s"] for url, r in watched.items()},
        upgrade_dashboard_loads=sum(r["loads"] for r in watched.values()),
    )

    assert done.returncode == 0, done.stdout[-6000:]
    assert [r["failures"] for r in watched.values()] == [[], [], []]
    assert all(r["loads"] > 20 for r in watched.values()), watched
    for node in DEVICES:
        assert health(fleet, node)["host_version"] == SECOND
        assert health(fleet, node)["status"] == "ok"
        assert compiled_files(fleet, node) == compiled_before[node], "plugins were recompiled"

    def upgraded() -> dict | None:
        devices = control_plane(fleet, DEVICES_ON_CONTROL_PLANE)
        return devices if all(d["host_version"] == SECOND for d in devices.values()) else None

    on_control_plane = wait_until(upgraded, timeout=30, what="the control plane to see it")
    for device in on_control_plane.values():
        assert device["maintenance"] == ""
        assert device["events"][-2:] == [
            f"started: upgrading the device host to {SECOND}",
            f"finished: upgraded to {SECOND}",
        ]


def test_a_host_failing_its_health_check_is_rolled_back_and_the_rollout_stops(
    fleet, inventory, bundles
):
    started = {node: service_start(fleet, node) for node in DEVICES}
    broken = inventory / "host_vars" / "node1.yml"
    broken.write_text(yaml.safe_dump({"device_host_bundle_dir": str(bundles["broken"])}))
    try:
        done, _ = playbook(
            fleet,
            inventory,
            "upgrade.yml",
            "-e",
            f"pi_fleet_version={THIRD}",
            "-e",
            "device_host_health_retries=15",
        )
    finally:
        broken.unlink()

    assert done.returncode != 0
    assert "node1 did not come back healthy on 0.1.2" in done.stdout, done.stdout[-6000:]
    assert health(fleet, "node1")["host_version"] == SECOND
    assert health(fleet, "node1")["status"] == "ok"
    for node in ("node2", "node3"):
        assert health(fleet, node)["host_version"] == SECOND
        assert service_start(fleet, node) == started[node], f"{node} was restarted"
    devices = control_plane(fleet, DEVICES_ON_CONTROL_PLANE)
    assert devices["node1"]["maintenance"] == ""
    assert devices["node1"]["events"][-1] == (
        f"finished: upgrade to {THIRD} failed; rolled back to {SECOND}"
    )
    assert all(THIRD not in " ".join(devices[node]["events"]) for node in ("node2", "node3"))


def service_start(fleet: VirtualFleet, node: str) -> str:
    """When the device host's current process started (changes with every restart)."""
    return fleet.ssh(node, "systemctl show -p ExecMainStartTimestampMonotonic device-host").stdout


def compiled_files(fleet: VirtualFleet, node: str) -> list[str]:
    """The compiled components on ``node`` with their modification times."""
    return fleet.ssh(
        node, "sudo find /var/lib/device-host/compiled -type f -printf '%P %T@\\n' | sort"
    ).stdout.split("\n")
