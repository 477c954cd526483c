"""The fleet's private Ethernet, built entirely inside network namespaces the harness owns.

One namespace holds a bridge; the controller and every node have a namespace of their own,
joined to the bridge by a veth pair. The root namespace gains nothing, there are no default
routes, no forwarding and no NAT: a node physically cannot reach anything off this machine.
All names share a prefix so that a crashed run's leftovers are found by name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from tests.virtual_fleet.host import VirtualFleetError, run, terminate

SUBNET = ipaddress.ip_network("10.77.0.0/24")
CONTROLLER_ADDRESS = "10.77.0.1"
NETNS_DIR = Path("/run/netns")
BRIDGE = "br0"


@dataclass(frozen=True)
class Lan:
    """The namespaces and links of one fleet, all named ``<prefix>...``."""

    prefix: str

    @property
    def lan_namespace(self) -> str:
        return f"{self.prefix}lan"

    @property
    def controller_namespace(self) -> str:
        return f"{self.prefix}ctl"

    def node_namespace(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def exec_argv(self, namespace: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", namespace, *argv]

    def create(self) -> None:
        """Creates the bridge namespace and the controller at CONTROLLER_ADDRESS."""
        _add_namespace(self.lan_namespace)
        _ip(self.lan_namespace, "link", "add", BRIDGE, "type", "bridge")
        _ip(self.lan_namespace, "link", "set", BRIDGE, "up")
        self._attach(self.controller_namespace, "vctl", "eth0", CONTROLLER_ADDRESS)

    def add_node(self, node: str, address: str) -> None:
        """Gives ``node`` a namespace with ``host0`` at ``address``, as systemd-nspawn expects."""
        self._attach(self.node_namespace(node), f"vn{address.rsplit('.', 1)[1]}", "host0", address)

    def _attach(self, namespace: str, bridge_port: str, interface: str, address: str) -> None:
        _add_namespace(namespace)
        veth = f"link add {bridge_port} type veth peer name {interface} netns {namespace}"
        _ip(self.lan_namespace, *veth.split())
        _ip(self.lan_namespace, "link", "set", bridge_port, "master", BRIDGE, "up")
        _ip(namespace, "link", "set", "lo", "up")
        _ip(namespace, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", interface)
        _ip(namespace, "link", "set", interface, "up")

    def remove(self) -> None:
        """Removes every namespace with the prefix, whatever run created it.

        Processes inside are ended first: an open socket (an SSH control master, say) keeps a
        deleted namespace and its veth alive, and the next run would then find the names taken.
        """
        namespaces = self.namespaces()
        for namespace in namespaces:
            terminate(int(pid) for pid in run(["ip", "netns", "pids", namespace]).split())
        if self.lan_namespace in namespaces:
            for port in run(["ip", "-n", self.lan_namespace, "-o", "link", "show"]).splitlines():
                name = port.split(":")[1].strip().split("@")[0]
                if name not in ("lo", BRIDGE):
                    _ip(self.lan_namespace, "link", "del", name)
        for namespace in namespaces:
            run(["ip", "netns", "del", namespace])

    def namespaces(self) -> list[str]:
        names = [path.name for path in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
        return sorted(name for name in names if name.startswith(self.prefix))


def check_address(address: str) -> str:
    """Accepts a node address inside SUBNET that is neither the controller's nor reserved."""
    parsed = ipaddress.ip_address(address)
    hosts = set(SUBNET.hosts()) - {ipaddress.ip_address(CONTROLLER_ADDRESS)}
    if parsed not in hosts:
        raise VirtualFleetError(f"{address} is not a free node address in {SUBNET}")
    return str(parsed)


def _add_namespace(namespace: str) -> None:
    run(["ip", "netns", "add", namespace])


def _ip(namespace: str, *args: str) -> None:
    run(["ip", "-n", namespace, *args])
