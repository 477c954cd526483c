"""site.yml and upgrade.yml against a virtual fleet: two app servers behind one nginx,
PostgreSQL and Mosquitto on their own hosts, three devices behind a NAT router.

Real hosts (systemd-nspawn), real SSH, real systemd units, real release bundles installed
offline; every address belongs to a namespace the fleet made. No server can route to a
device: everything reaches the devices through connections they open (HTTPS polls, MQTT
notices). The tests run in order and share the fleet: provision, deliver, break things,
provision again, upgrade, upgrade with one broken host.
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

from tests.provisioning.conftest import DEVICES, FLEET_DIR, NODES, REPO, SERVERS
from tests.support import ARTIFACTS, wait_until
from tests.virtual_fleet import VirtualFleet
from tests.virtual_fleet.network import ROUTER_ADDRESS

BIN = Path(sys.executable).parent
DIST = FLEET_DIR / "dist"
FIRST, SECOND, THIRD = "0.1.0", "0.1.1", "0.1.2"
FIGURES = ARTIFACTS / "provisioning.json"
PUBLIC_URL = f"https://{SERVERS['cp1']}"
DASHBOARD_NEXT = "1.1.0"
HEARTBEAT_S = 15
"""Long enough that a device converging within NOTICE_S was told by its notice."""
NOTICE_S = 8
UNITS = {
    "cp1": "control-plane control-plane-worker nginx",
    "cp2": "control-plane nginx",
    "db": "postgresql@15-main pi-fleet-db-backup",
    "mqtt": "mosquitto",
}

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


@pytest.fixture(scope="module", autouse=True)
def journals(fleet: VirtualFleet) -> Iterator[None]:
    """Each host's service journals, into tests/artifacts/, for reading after a failure."""
    yield
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for node in NODES:
        units = " ".join(f"-u {unit}" for unit in UNITS.get(node, "device-host").split())
        journal = fleet.ssh(node, f"sudo journalctl {units} --no-pager", check=False)
        (ARTIFACTS / f"provisioning-{node}.log").write_text(journal.stdout + journal.stderr)


@pytest.fixture(scope="module")
def inventory(fleet: VirtualFleet, bundles: dict[str, Path], build) -> Path:
    """The test fleet's inventory: real layout, simulated DHT22 and GPIO, short intervals."""
    root = fleet.workdir / "inventory"
    (root / "group_vars").mkdir(parents=True)
    (root / "host_vars").mkdir()

    def group(names: dict[str, str]) -> dict:
        return {"hosts": {n: {"ansible_host": a} for n, a in names.items()}}

    hosts = {
        "all": {
            "children": {
                "control_plane": group({n: SERVERS[n] for n in ("cp1", "cp2")}),
                "database": group({"db": SERVERS["db"]}),
                "broker": group({"mqtt": SERVERS["mqtt"]}),
                "devices": group(DEVICES),
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
        "base_service_groups": [],
    }
    (root / "group_vars/all.yml").write_text(yaml.safe_dump(everyone))
    control_plane = {
        "control_plane_heartbeat_interval_s": HEARTBEAT_S,
        # Memory is tight: two gunicorn workers each, one job worker for the fleet (on cp1).
        "control_plane_workers": 2,
        # The nodes are offline: no Debian mirror to build the arm64 compiler from.
        "control_plane_cross_compile": False,
        "control_plane_plugins": [{"path": str(build("dashboard")), "assign": "all"}],
    }
    (root / "group_vars/control_plane.yml").write_text(yaml.safe_dump(control_plane))
    (root / "host_vars/cp2.yml").write_text(yaml.safe_dump({"control_plane_worker_enabled": False}))
    (root / "group_vars/database.yml").write_text(yaml.safe_dump({"postgresql_backup_keep": 2}))
    devices = {
        "base_service_groups": ["gpio"],
        "device_host_sensor_driver": "simulated",
        "device_host_gpio_driver": "simulated",
        "device_host_heartbeat_interval_s": HEARTBEAT_S,
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
    done = fleet.ssh("cp1", f"sudo control-plane-manage shell -v 0 -c {shlex.quote(code)}")
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


def local_health(fleet: VirtualFleet, node: str) -> dict:
    """The device's full /healthz (plugins, agent, channel): only loopback gets the detail."""
    done = fleet.ssh(node, "curl -sf --max-time 5 http://127.0.0.1:3000/healthz", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def dashboard_versions(fleet: VirtualFleet) -> dict[str, str | None]:
    """The dashboard version each device runs."""
    versions: dict[str, str | None] = {}
    for node in DEVICES:
        plugins = local_health(fleet, node).get("plugins", [])
        running = [
            p for p in plugins if p.get("name") == "dashboard" and p.get("state") == "running"
        ]
        versions[node] = running[0].get("version") if running else None
    return versions


def wait_for_dashboard(fleet: VirtualFleet, version: str, timeout: float, what: str) -> float:
    """Seconds until every device runs dashboard ``version``."""
    started = time.monotonic()
    wait_until(
        lambda: set(dashboard_versions(fleet).values()) == {version}, timeout=timeout, what=what
    )
    return time.monotonic() - started


def manage(fleet: VirtualFleet, command: str, node: str = "cp1") -> str:
    return fleet.ssh(node, f"sudo control-plane-manage {command}").stdout


def test_site_provisions_every_server_and_every_device(fleet, inventory):
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
            d["seen_s_ago"] is not None and d["seen_s_ago"] < 2 * HEARTBEAT_S
            for d in control_plane(fleet, DEVICES_ON_CONTROL_PLANE).values()
        ),
        timeout=30,
        what="every device to heartbeat",
    )
    assert sorted(control_plane(fleet, DEVICES_ON_CONTROL_PLANE)) == sorted(DEVICES)


def test_no_server_can_reach_a_device(fleet):
    for server in SERVERS:
        for address in DEVICES.values():
            route = fleet.ssh(server, f"ip route get {address}", check=False)
            assert route.returncode != 0 and "unreachable" in route.stderr, (server, route.stdout)
    # Even with a route (a server cannot add one: no CAP_NET_ADMIN; root outside can), the
    # router drops what a server starts towards a device.
    namespace = fleet.lan.node_namespace("cp1")
    route = ["ip", "-n", namespace, "route", "add", f"{DEVICES['node1']}/32", "via", ROUTER_ADDRESS]
    subprocess.run(route, check=True)
    try:
        probe = subprocess.run(
            ["ip", "netns", "exec", namespace, "curl", "-s", "--max-time", "3",
             f"http://{DEVICES['node1']}:3000/healthz"],
            capture_output=True, text=True,
        )  # fmt: skip
    finally:
        subprocess.run([*route[:4], "del", *route[5:]], check=True)
    assert probe.returncode == 28, (probe.returncode, probe.stdout)


def test_devices_talk_https_to_the_front_and_mqtt_to_the_broker(fleet):
    for node in DEVICES:
        config = fleet.ssh(node, "cat /etc/device-host/config.toml").stdout
        assert f'control_plane_url = "{PUBLIC_URL}"' in config
        assert "agent_url" not in config
        agent = local_health(fleet, node)["agent"]
        assert agent["control_plane"] == PUBLIC_URL
        assert agent["channel"]["broker"] == f"mqtts://{SERVERS['mqtt']}:8883", agent
        wait_until(
            lambda node=node: local_health(fleet, node)["agent"]["channel"]["state"] == "connected",
            timeout=30,
            what=f"{node} to subscribe to its notices",
        )
    plain = fleet.controller(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
         f"http://{SERVERS['cp1']}/api/v1/heartbeat"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert plain.stdout.startswith("301 https://"), plain.stdout
    deploy = fleet.ssh("cp2", "sudo control-plane-manage check --deploy --fail-level WARNING")
    assert "no issues" in deploy.stdout, deploy.stdout + deploy.stderr
    for server in ("cp1", "cp2"):
        listening = fleet.ssh(server, "sudo ss -Hltnp").stdout
        assert "gunicorn" not in listening, f"gunicorn listens on TCP on {server}:\n{listening}"


def nginx_log(fleet: VirtualFleet) -> list[str]:
    return fleet.ssh("cp1", "sudo cat /var/log/nginx/access.log").stdout.splitlines()


def test_the_second_app_server_alone_serves_an_approval_behind_the_same_nginx(fleet, build):
    plugin = build("dashboard", version=DASHBOARD_NEXT, label="dashboard-next")
    fleet.ssh("cp1", "sudo rm -rf /tmp/next && mkdir /tmp/next")
    for name in ["manifest.toml", *(path.name for path in plugin.glob("*.wasm"))]:
        copied = fleet.controller(
            ["scp", "-q", "-i", str(fleet.ssh_key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", str(plugin / name),
             f"pi@{SERVERS['cp1']}:/tmp/next/{name}"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert copied.returncode == 0, copied.stderr
    fleet.ssh("cp1", "sudo chmod -R a+rX /tmp/next")
    fleet.ssh("cp1", "sudo systemctl stop control-plane")  # cp1's gunicorn; its worker stays
    try:
        before = len(nginx_log(fleet))
        manage(fleet, "publish_plugin /tmp/next --assign all")
        seconds = wait_for_dashboard(fleet, DASHBOARD_NEXT, 120, "every device, served by cp2")
        served = nginx_log(fleet)[before:]
    finally:
        fleet.ssh("cp1", "sudo systemctl start control-plane")
    record(approval_via_second_app_server_s=round(seconds, 1))

    answered = [line for line in served if " 200 " in line]
    assert answered and all(
        f"{SERVERS['cp2']}:8081" in line.rpartition("upstream=")[2] for line in answered
    ), served
    assert any("/api/v1/heartbeat" in line and " 200 " in line for line in served), served
    downloads = [
        line for line in served if "/api/v1/compiled/" in line or "/api/v1/artifacts/" in line
    ]
    assert len([line for line in downloads if " 200 " in line]) >= len(DEVICES), served


def test_an_approval_reaches_every_device_within_seconds(fleet):
    manage(fleet, "assign_release dashboard 1.0.0 all")
    seconds = wait_for_dashboard(fleet, "1.0.0", NOTICE_S, "every device, told by its notice")
    record(assignment_to_every_device_s=round(seconds, 1))
    notified = {n: local_health(fleet, n)["agent"]["channel"]["notices"] for n in DEVICES}
    assert all(count >= 2 for count in notified.values()), notified


def test_a_device_cannot_read_another_devices_notices(fleet):
    ids = {
        node: local_health(fleet, node)["agent"]["channel"]["topic"].split("/")[2]
        for node in ("node1", "node2")
    }

    def subscribe(topic: str) -> subprocess.CompletedProcess[str]:
        channel = "/var/lib/device-host/agent/channel"
        return fleet.ssh(
            "node1",
            f"sudo mosquitto_sub -h {SERVERS['mqtt']} -p 8883 --cafile "
            f"/etc/device-host/control-plane-ca.pem --cert {channel}/cert.pem --key "
            f"{channel}/key.pem -t {shlex.quote(topic)} -C 1 -W 3 -v",
            check=False,
        )

    own = subscribe(f"pi-fleet/devices/{ids['node1']}/desired")
    other = subscribe(f"pi-fleet/devices/{ids['node2']}/desired")
    everything = subscribe("pi-fleet/devices/#")
    assert '"desired_sequence"' in own.stdout, own.stdout + own.stderr
    assert other.stdout == "", other.stdout
    assert ids["node2"] not in everything.stdout, everything.stdout


def test_a_device_pinning_the_wrong_ca_refuses_the_control_plane(fleet):
    node = "node3"
    refused = fleet.ssh(
        node,
        "cd /tmp && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout wrong-key.pem -out wrong-ca.pem -days 1 -subj /CN=wrong 2>/dev/null && "
        f"curl -s --max-time 5 --cacert wrong-ca.pem {PUBLIC_URL}/healthz; echo exit=$?",
    )
    pinned = fleet.ssh(
        node,
        "curl -sf --max-time 5 --cacert /etc/device-host/control-plane-ca.pem "
        f"{PUBLIC_URL}/healthz",
    )
    assert "exit=60" in refused.stdout, refused.stdout
    assert json.loads(pinned.stdout)["status"] == "ok"
    fleet.ssh(
        node,
        "sudo cp /etc/device-host/control-plane-ca.pem /tmp/right-ca.pem && "
        "sudo cp /tmp/wrong-ca.pem /etc/device-host/control-plane-ca.pem && "
        "sudo systemctl restart device-host",
    )
    try:
        wait_until(
            lambda: local_health(fleet, node).get("agent", {}).get("heartbeat_failures", 0) > 0,
            timeout=60,
            what=f"{node} to refuse the control plane",
        )
        log = fleet.ssh(node, "sudo journalctl -u device-host -n 50 --no-pager").stdout
        assert "CERTIFICATE_VERIFY_FAILED" in log or "certificate verify failed" in log, log
    finally:
        fleet.ssh(
            node,
            "sudo cp /tmp/right-ca.pem /etc/device-host/control-plane-ca.pem && "
            "sudo systemctl restart device-host",
        )
    wait_until(
        lambda: local_health(fleet, node).get("status") == "ok",
        timeout=60,
        what=f"{node} to trust the right CA again",
    )


def test_with_the_broker_stopped_devices_converge_by_heartbeat(fleet):
    fleet.ssh("mqtt", "sudo systemctl stop mosquitto")
    try:
        manage(fleet, f"assign_release dashboard {DASHBOARD_NEXT} all")
        seconds = wait_for_dashboard(
            fleet, DASHBOARD_NEXT, 3 * HEARTBEAT_S, "heartbeats to deliver"
        )
        record(broker_down_convergence_s=round(seconds, 1))
    finally:
        fleet.ssh("mqtt", "sudo systemctl start mosquitto")


def test_a_reload_during_fan_out_loses_nothing(fleet):
    for node in DEVICES:
        wait_until(
            lambda node=node: local_health(fleet, node)["agent"]["channel"]["state"] == "connected",
            timeout=60,
            what=f"{node} to subscribe again after the broker restart",
        )
    manage(fleet, f"assign_release dashboard {DASHBOARD_NEXT} all")
    for server in ("cp1", "cp2"):
        fleet.ssh(server, "sudo systemctl reload control-plane")
    seconds = wait_for_dashboard(
        fleet, DASHBOARD_NEXT, 3 * HEARTBEAT_S, "every device after a reload"
    )
    record(reload_fan_out_s=round(seconds, 1))
    # The devices have it by heartbeat already; the notices must still all go out. A batch
    # the broker did not acknowledge (it restarted in the test before) waits for the
    # worker's minute sweep, so the outbox gets two sweeps' time to drain.
    deadline, backlog = time.monotonic() + 150, None
    while time.monotonic() < deadline:
        backlog = control_plane(fleet, OUTBOX_BACKLOG)
        if backlog["pending"] == 0:  # type: ignore[index]
            break
        time.sleep(2)
    assert backlog is not None and backlog["pending"] == 0, backlog  # type: ignore[index]


OUTBOX_BACKLOG = """
import json
from control_plane.notices.models import DesiredNotice
from control_plane.notices.selectors import backlog
b = backlog()
errors = sorted({n.last_error for n in DesiredNotice.objects.exclude(last_error="")})
print(json.dumps({"pending": b.pending, "failing": b.failing, "attempts": b.most_attempts,
                  "errors": errors[:3]}))
"""


def test_secrets_are_made_once_and_stay_where_they_belong(fleet):
    digest = (
        "sudo sha256sum /etc/pi-fleet/secret-key /etc/pi-fleet/keys/signing-key.pem "
        "/etc/pi-fleet/keys/device-ca-key.pem | cut -d' ' -f1"
    )
    assert fleet.ssh("cp1", digest).stdout == fleet.ssh("cp2", digest).stdout
    assert (
        fleet.ssh("cp1", "sudo test -s /etc/pi-fleet/fleet-ca/ca-key.pem", check=False).returncode
        == 0
    )
    for node in NODES:
        if node != "cp1":
            found = fleet.ssh(node, "sudo test -e /etc/pi-fleet/fleet-ca/ca-key.pem", check=False)
            assert found.returncode != 0, f"the fleet CA's key is on {node}"
    for node in ("db", "mqtt", *DEVICES):
        listing = fleet.ssh(node, "sudo ls -R /etc/pi-fleet 2>/dev/null", check=False).stdout
        assert "signing-key.pem" not in listing and "device-ca-key" not in listing, node
    broker_key = fleet.ssh("mqtt", "sudo stat -c '%U:%G %a' /etc/mosquitto/certs/broker-key.pem")
    assert broker_key.stdout.strip() == "root:mosquitto 640"
    service = fleet.ssh(
        "node1",
        "systemctl show device-host -p User -p NoNewPrivileges -p ProtectSystem -p MemoryMax",
    ).stdout
    assert fleet.ssh("node1", "ls /etc/device-host/trusted-keys").stdout.strip().endswith(".pub")
    assert fleet.ssh("node1", "test -e /etc/device-host/enrollment.env", check=False).returncode
    assert "User=pi-fleet" in service and "NoNewPrivileges=yes" in service
    assert "gpio" in fleet.ssh("node1", "id -Gn pi-fleet").stdout.split()
    assert "ProtectSystem=strict" in service


def test_postgresql_lets_only_the_app_servers_in_and_backs_up(fleet):
    listening = fleet.ssh("db", "sudo ss -Hltn sport = :5432").stdout
    addresses = sorted(line.split()[3] for line in listening.splitlines())
    assert addresses == sorted([f"{SERVERS['db']}:5432", "127.0.0.1:5432"]) or addresses == sorted(
        [f"{SERVERS['db']}:5432", "127.0.0.1:5432", "[::1]:5432"]
    ), addresses
    refused = fleet.ssh(
        "mqtt",
        f"PGCONNECT_TIMEOUT=3 psql -h {SERVERS['db']} -U pi_fleet -d pi_fleet -c 'select 1'",
        check=False,
    )
    assert "no pg_hba.conf entry" in refused.stderr, refused.stderr
    for _ in range(3):
        fleet.ssh("db", "sudo systemctl start pi-fleet-db-backup.service")
    dumps = fleet.ssh("db", "sudo ls /var/backups/pi-fleet").stdout.split()
    assert len(dumps) == 2 and all(d.startswith("pi_fleet-") and d.endswith(".dump") for d in dumps)
    listed = fleet.ssh("db", f"sudo pg_restore --list /var/backups/pi-fleet/{dumps[-1]}").stdout
    assert "devices_device" in listed
    assert "prune_history" in fleet.ssh("cp1", "systemctl cat control-plane-prune.service").stdout
    assert (
        fleet.ssh("cp1", "systemctl is-enabled control-plane-prune.timer").stdout.strip()
        == "enabled"
    )


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
