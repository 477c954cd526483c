"""A virtual fleet for playbook tests: Debian nodes under systemd-nspawn on a private LAN.

``build_base_image`` makes the root filesystem once; ``VirtualFleet`` boots nodes from it,
each a real systemd with its own hostname, address and SSH host keys, reachable only from
the controller network namespace. Needs root, systemd-container and mmdebstrap.
"""

from tests.virtual_fleet.base_image import BASE_PACKAGES, build_base_image
from tests.virtual_fleet.fleet import Node, VirtualFleet
from tests.virtual_fleet.host import VirtualFleetError
from tests.virtual_fleet.network import CONTROLLER_ADDRESS

__all__ = [
    "BASE_PACKAGES",
    "CONTROLLER_ADDRESS",
    "Node",
    "VirtualFleet",
    "VirtualFleetError",
    "build_base_image",
]
