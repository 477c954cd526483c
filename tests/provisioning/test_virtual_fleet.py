"""The virtual fleet: real systemd nodes on a private LAN that Ansible can provision.

These share the provisioning fleet (conftest's session ``fleet``): a boot is cheap, but a
second fleet beside a provisioned one is not, on two cores.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.provisioning.conftest import DEVICES, NODES, REPO, SERVERS, fleet_workdir, leftovers
from tests.support import wait_until
from tests.virtual_fleet import CONTROLLER_ADDRESS, VirtualFleet
from tests.virtual_fleet.network import ROUTER_ADDRESS

ANSIBLE = Path(sys.executable).parent / "ansible"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def inventory(fleet: VirtualFleet) -> Path:
    path = fleet.workdir / "inventory.ini"
    hosts = "".join(f"{node.name} ansible_host={node.address}\n" for node in fleet.nodes.values())
    path.write_text(f"[fleet]\n{hosts}")
    return path


def ansible(fleet: VirtualFleet, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = fleet.controller(
        [str(ANSIBLE), "all", "-i", str(inventory), *args],
        env=fleet.ansible_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.parametrize("node", NODES)
def test_each_node_boots_systemd_to_running(fleet: VirtualFleet, node: str) -> None:
    assert fleet.ssh(node, "cat /proc/1/comm").stdout.strip() == "systemd"
    state = fleet.ssh(node, "systemctl is-system-running --wait", check=False).stdout.strip()
    failed = fleet.ssh(node, "systemctl --failed --no-legend", check=False).stdout
    assert state == "running", f"{node} is {state}; failed units:\n{failed}"


def test_nodes_are_named_after_themselves_with_distinct_machine_ids(fleet: VirtualFleet) -> None:
    hostnames = {node: fleet.ssh(node, "hostname").stdout.strip() for node in NODES}
    machine_ids = {fleet.ssh(node, "cat /etc/machine-id").stdout.strip() for node in NODES}
    assert hostnames == {node: node for node in NODES}
    assert len(machine_ids) == len(NODES)


def test_every_node_generates_its_own_ssh_host_keys(fleet: VirtualFleet) -> None:
    keys = {
        (node.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[1]
        for node in fleet.nodes.values()
    }
    assert len(keys) == len(NODES)


def test_nodes_reach_each_other_and_the_controller(fleet: VirtualFleet) -> None:
    for target in (NODES["node2"], "node2", CONTROLLER_ADDRESS, SERVERS["cp1"], "cp1"):
        fleet.ssh("node1", f"ping -c1 -W2 {target}")
    fleet.ssh("cp1", f"ping -c1 -W2 {SERVERS['db']}")


def test_devices_sit_behind_a_nat_that_lets_nothing_in(fleet: VirtualFleet) -> None:
    listener = subprocess.Popen(
        fleet.ssh_argv(
            "cp1",
            ["python3 -c \"import socket; s = socket.create_server(('', 5999)); "
             "print('listening', flush=True); print(s.accept()[1][0])\""],
        ),
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert listener.stdout is not None and listener.stdout.readline() == "listening\n"
    fleet.ssh("node1", "python3 -c \"import socket; socket.create_connection(('cp1', 5999))\"")
    seen_from, _ = listener.communicate(timeout=10)
    from_server = fleet.ssh("cp1", f"ping -c1 -W2 {DEVICES['node1']}", check=False)
    from_controller = fleet.ssh("node1", "true", check=False)  # ssh runs in the controller
    assert seen_from.strip() == ROUTER_ADDRESS
    assert from_server.returncode != 0
    assert from_controller.returncode == 0


def test_nothing_routes_off_the_machine(fleet: VirtualFleet) -> None:
    from_node = fleet.ssh("node1", "ip route get 192.0.2.1", check=False)
    from_controller = fleet.controller(["ip", "route", "get", "192.0.2.1"], capture_output=True)
    root_addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert from_node.returncode != 0, from_node.stdout
    assert "unreachable" in from_node.stderr
    assert from_controller.returncode != 0
    assert "10.77." not in root_addresses and "10.78." not in root_addresses


def test_ansible_reaches_every_node(fleet: VirtualFleet, inventory: Path) -> None:
    done = ansible(fleet, inventory, "-m", "ansible.builtin.ping")
    assert done.stdout.count('"ping": "pong"') == len(NODES), done.stdout


def test_ansible_becomes_root_through_passwordless_sudo(
    fleet: VirtualFleet, inventory: Path
) -> None:
    done = ansible(fleet, inventory, "-b", "-m", "ansible.builtin.command", "-a", "id")
    assert done.stdout.count("uid=0(root)") == len(NODES), done.stdout


def solo_fleet(workdir: Path, base_image: Path) -> VirtualFleet:
    """A one-node fleet with its own prefix, so it runs beside the module's fleet."""
    return VirtualFleet(workdir, base_image, {"solo": "10.77.0.21"}, prefix="pft-")


def test_down_leaves_nothing_behind_even_when_repeated(base_image: Path) -> None:
    with fleet_workdir() as workdir:
        solo = solo_fleet(workdir, base_image)
        with solo:
            assert solo.ssh("solo", "hostname").stdout.strip() == "solo"
            assert leftovers(solo), "the leftover check sees nothing of a running fleet"
        solo.down()
        assert leftovers(solo) == []


def test_a_killed_run_takes_its_nodes_along_and_the_next_up_clears_the_rest(
    base_image: Path,
) -> None:
    script = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from tests.provisioning.test_virtual_fleet import solo_fleet
        solo_fleet(Path(sys.argv[1]), Path(sys.argv[2])).up()
        print("up", flush=True)
        time.sleep(600)
    """)
    with fleet_workdir() as workdir:
        argv = [sys.executable, "-c", script, str(workdir), str(base_image)]
        with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE) as killed:
            assert killed.stdout is not None and killed.stdout.readline() == b"up\n"
            killed.kill()
        solo = solo_fleet(workdir, base_image)
        wait_until(
            lambda: not any(entry.startswith("process") for entry in leftovers(solo)),
            timeout=20,
            what="the killed run's nodes to stop",
        )
        assert any(entry.startswith("netns") for entry in leftovers(solo))
        with solo:
            state = solo.ssh("solo", "systemctl is-system-running --wait").stdout.strip()
            assert state == "running"
        assert leftovers(solo) == []
