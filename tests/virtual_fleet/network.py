"""The fleet's private Ethernets, built entirely inside network namespaces the harness owns.

One namespace holds the bridges; the controller and every node have a namespace of their
own, joined to a bridge by a veth pair. Servers sit on the fleet LAN (SUBNET). Devices sit on
a LAN of their own (DEVICE_SUBNET) behind a router namespace that masquerades their traffic
onto the fleet LAN and forwards nothing inwards except from the controller, the way an
operator's bastion or VPN reaches Pis behind a home router: a server cannot open a single
connection to a device. The root namespace gains nothing and there are no default routes: a
node physically cannot reach anything off this machine. All names share a prefix so that a
crashed run's leftovers are found by name.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.virtual_fleet.host import VirtualFleetError, run, terminate

SUBNET = ipaddress.ip_network("10.77.0.0/24")
CONTROLLER_ADDRESS = "10.77.0.1"
DEVICE_SUBNET = ipaddress.ip_network("10.78.0.0/24")
ROUTER_ADDRESS = "10.77.0.254"
"""The NAT router's address on the fleet LAN: device traffic appears to come from here."""
DEVICE_GATEWAY = "10.78.0.1"
"""The NAT router's address on the device LAN, the devices' only route out."""
NETNS_DIR = Path("/run/netns")
BRIDGE = "br0"
DEVICE_BRIDGE = "br1"
_ROUTER_RULES = f"""
table ip fleet_nat {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "dev0" oifname "lan0" accept
        iifname "lan0" oifname "dev0" ip saddr {CONTROLLER_ADDRESS} accept
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat;
        oifname "lan0" ip saddr {DEVICE_SUBNET} masquerade
    }}
}}
"""


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

    @property
    def router_namespace(self) -> str:
        return f"{self.prefix}nat"

    def node_namespace(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def exec_argv(self, namespace: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", namespace, *argv]

    def create(self, *, device_lan: bool = False) -> None:
        """Creates the bridge namespace and the controller; with ``device_lan``, the NAT too."""
        _add_namespace(self.lan_namespace)
        _ip(self.lan_namespace, "link", "add", BRIDGE, "type", "bridge")
        _ip(self.lan_namespace, "link", "set", BRIDGE, "up")
        self._attach(self.controller_namespace, "vctl", "eth0", CONTROLLER_ADDRESS)
        if device_lan:
            self._create_router()

    def _create_router(self) -> None:
        """The device LAN's bridge and the router between it and the fleet LAN.

        The controller alone gets a route to the device LAN (Ansible must SSH in); the
        router's forward chain drops anything else that tries to enter.
        """
        _ip(self.lan_namespace, "link", "add", DEVICE_BRIDGE, "type", "bridge")
        _ip(self.lan_namespace, "link", "set", DEVICE_BRIDGE, "up")
        router = self.router_namespace
        self._attach(router, "vnatl", "lan0", ROUTER_ADDRESS)
        self._attach(router, "vnatd", "dev0", DEVICE_GATEWAY, bridge=DEVICE_BRIDGE)
        run(self.exec_argv(router, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        loaded = subprocess.run(
            self.exec_argv(router, ["nft", "-f", "-"]),
            input=_ROUTER_RULES,
            capture_output=True,
            text=True,
            check=False,
        )
        if loaded.returncode != 0:
            raise VirtualFleetError(f"nft refused the NAT rules: {loaded.stderr.strip()}")
        _ip(self.controller_namespace, "route", "add", str(DEVICE_SUBNET), "via", ROUTER_ADDRESS)

    def add_node(self, node: str, address: str) -> None:
        """Gives ``node`` a namespace with ``host0`` at ``address``, as systemd-nspawn expects.

        A device (an address in DEVICE_SUBNET) reaches the fleet LAN through the router only.
        """
        octets = address.split(".")
        port = f"vn{octets[2]}x{octets[3]}"
        namespace = self.node_namespace(node)
        if ipaddress.ip_address(address) in DEVICE_SUBNET:
            self._attach(namespace, port, "host0", address, bridge=DEVICE_BRIDGE)
            _ip(namespace, "route", "add", str(SUBNET), "via", DEVICE_GATEWAY)
        else:
            self._attach(namespace, port, "host0", address)

    def _attach(
        self, namespace: str, bridge_port: str, interface: str, address: str, bridge: str = BRIDGE
    ) -> None:
        if namespace not in self.namespaces():
            _add_namespace(namespace)
        veth = f"link add {bridge_port} type veth peer name {interface} netns {namespace}"
        _ip(self.lan_namespace, *veth.split())
        _ip(self.lan_namespace, "link", "set", bridge_port, "master", bridge, "up")
        _ip(namespace, "link", "set", "lo", "up")
        prefixlen = (DEVICE_SUBNET if bridge == DEVICE_BRIDGE else SUBNET).prefixlen
        _ip(namespace, "addr", "add", f"{address}/{prefixlen}", "dev", interface)
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
                if name not in ("lo", BRIDGE, DEVICE_BRIDGE):
                    _ip(self.lan_namespace, "link", "del", name)
        for namespace in namespaces:
            run(["ip", "netns", "del", namespace])

    def namespaces(self) -> list[str]:
        names = [path.name for path in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
        return sorted(name for name in names if name.startswith(self.prefix))


def is_device_address(address: str) -> bool:
    """Whether ``address`` sits on the device LAN, behind the NAT router."""
    return ipaddress.ip_address(address) in DEVICE_SUBNET


def check_address(address: str) -> str:
    """Accepts a free node address on the fleet LAN or the device LAN.

    The controller's and the router's addresses are taken.
    """
    parsed = ipaddress.ip_address(address)
    taken = {ipaddress.ip_address(a) for a in (CONTROLLER_ADDRESS, ROUTER_ADDRESS, DEVICE_GATEWAY)}
    hosts = (set(SUBNET.hosts()) | set(DEVICE_SUBNET.hosts())) - taken
    if parsed not in hosts:
        raise VirtualFleetError(
            f"{address} is not a free node address in {SUBNET} or {DEVICE_SUBNET}"
        )
    return str(parsed)


def _add_namespace(namespace: str) -> None:
    run(["ip", "netns", "add", namespace])


def _ip(namespace: str, *args: str) -> None:
    run(["ip", "-n", namespace, *args])
