"""A virtual fleet by hand, for debugging playbooks; it stays up until ``down``.

    python -m tests.virtual_fleet up --nodes cp=10.77.0.2,node1=10.77.0.11
    python -m tests.virtual_fleet ssh node1 -- systemctl --failed
    python -m tests.virtual_fleet down

``up`` prints the ANSIBLE_CONFIG to use and the controller namespace to run Ansible in.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tests.support import REPO
from tests.virtual_fleet import VirtualFleet, VirtualFleetError, build_base_image

IMAGES = REPO / "var" / "virtual-fleet" / "images"


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workdir", type=Path, default=REPO / "var" / "virtual-fleet" / "manual")
    parser = argparse.ArgumentParser(prog="python -m tests.virtual_fleet")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", parents=[common], help="boot nodes that outlive this command")
    up.add_argument("--nodes", required=True, help="name=address,... e.g. node1=10.77.0.11")
    up.add_argument("--packages", default="", help="extra Debian packages for the image")
    up.add_argument("--prefix", default="pfm-", help="names its namespaces, mounts, cgroups")
    commands.add_parser("down", parents=[common], help="stop the nodes, remove what they used")
    ssh = commands.add_parser("ssh", parents=[common], help="log in to a node as pi")
    ssh.add_argument("node")
    ssh.add_argument("remote", nargs=argparse.REMAINDER, help="-- command...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "up":
            _up(args)
        elif args.command == "down":
            VirtualFleet.from_workdir(args.workdir).down()
        else:
            remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
            ssh_argv = VirtualFleet.from_workdir(args.workdir).ssh_argv(args.node, remote)
            if not remote:
                ssh_argv.insert(-1, "-t")
            os.execvp(ssh_argv[0], ssh_argv)
    except (VirtualFleetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _up(args: argparse.Namespace) -> None:
    nodes = dict(pair.split("=", 1) for pair in args.nodes.split(","))
    base = build_base_image([name for name in args.packages.split(",") if name], IMAGES)
    fleet = VirtualFleet(args.workdir, base, nodes, prefix=args.prefix, keep_running=True)
    try:
        fleet.up()
    except BaseException:
        fleet.down()
        raise
    print(f"export ANSIBLE_CONFIG={fleet.write_ansible_config()}")
    print(f"run Ansible with: ip netns exec {fleet.lan.controller_namespace} ansible ...")


if __name__ == "__main__":
    sys.exit(main())
