"""A fleet of Debian nodes booted by systemd-nspawn, each a real systemd on its own address.

Each node is an overlay over the shared base image, runs in its own network namespace and
cgroup, and is restarted by a small shell loop when the guest reboots (nspawn exits 133).
Everything the fleet creates is named after its prefix, so ``down()`` and the next ``up()``
find and remove what a crashed run left behind: processes, namespaces, mounts and cgroups.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.virtual_fleet.host import (
    VirtualFleetError,
    cgroup_hierarchies,
    join_cgroups,
    mounts,
    processes_named,
    remove_cgroups,
    require_root,
    run,
    stop_cgroups,
    unmount_below,
)
from tests.virtual_fleet.network import CONTROLLER_ADDRESS, Lan, check_address, is_device_address

log = logging.getLogger(__name__)

NSPAWN_RUN = Path("/run/systemd/nspawn")
STOP_GRACE_S = 10.0
STATE_FILE = "fleet.json"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_RESERVED = {"lan", "ctl", "nat", "nspawn"}
_BOOT_LOOP = """
while :; do
    setpriv --pdeathsig TERM systemd-nspawn --quiet -D "$1" --machine="$2" --hostname="$3" \\
        --uuid="$4" --register=no --keep-unit --network-namespace-path="$5" \\
        -b --console=read-only
    code=$?
    [ "$code" -eq 133 ] && [ ! -e "$6" ] || exit "$code"
done
"""
_SSH_OPTIONS = (
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
)  # fmt: skip


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    root: Path


class VirtualFleet:
    """Boots ``nodes`` (name -> address) from ``base``; all state lives under ``workdir``.

    Use it as a context manager, or call ``up()`` and ``down()``. Unless ``keep_running``,
    the nodes die with this process and ``down()`` also runs at interpreter exit.
    ``keep_running`` fleets outlive the process and are torn down later via
    ``from_workdir(workdir).down()``. Fleets with different prefixes can run side by side.

    ``workdir`` holds the SSH key, ``ansible.cfg``, the control sockets (``cp/``) and, per
    node, ``nodes/<name>/`` with the overlay (``root``, ``upper``) and ``console.log``.
    """

    def __init__(
        self,
        workdir: Path,
        base: Path,
        nodes: Mapping[str, str],
        *,
        prefix: str = "pfl-",
        keep_running: bool = False,
    ) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,6}-", prefix):
            raise VirtualFleetError(f"prefix {prefix!r} is not like 'pfl-'")
        for name in nodes:
            if not _NAME.match(name) or name in _RESERVED:
                raise VirtualFleetError(f"{name!r} cannot name a node")
        addresses = [check_address(address) for address in nodes.values()]
        if len(set(addresses)) != len(addresses):
            raise VirtualFleetError(f"node addresses repeat: {', '.join(addresses)}")
        self.workdir = workdir.resolve()
        self.base = base.resolve()
        self.prefix = prefix
        self.keep_running = keep_running
        self.lan = Lan(prefix)
        self.nodes = {
            name: Node(name, address, self.workdir / "nodes" / name / "root")
            for name, address in zip(nodes, addresses, strict=True)
        }
        self.ssh_key = self.workdir / "id_ed25519"
        self._loops: dict[str, subprocess.Popen[bytes]] = {}

    @classmethod
    def from_workdir(cls, workdir: Path) -> VirtualFleet:
        """The fleet that ``up()`` last started in ``workdir`` (from another process, say)."""
        state = json.loads((workdir / STATE_FILE).read_text())
        return cls(
            workdir, Path(state["base"]), state["nodes"], prefix=state["prefix"], keep_running=True
        )

    def __enter__(self) -> VirtualFleet:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    def up(self, timeout: float = 60) -> None:
        """Removes leftovers of this prefix, boots every node, waits until each sshd answers."""
        require_root("systemd-nspawn", "setpriv", "ip", "ssh", "ssh-keygen")
        if not (self.base / "usr/lib/os-release").exists():
            raise VirtualFleetError(f"{self.base} is not a base image")
        started = time.monotonic()
        if not self.keep_running:
            atexit.register(self.down)
        self._clean()
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = {"base": str(self.base), "nodes": self._addresses(), "prefix": self.prefix}
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        if not self.ssh_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "virtual-fleet", "-f",
                 self.ssh_key])  # fmt: skip
        if not any(m.target == NSPAWN_RUN and m.fstype == "tmpfs" for m in mounts()):
            # nspawn refuses to clean up its propagation directory on a disk-backed /run.
            NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
            run(["mount", "-t", "tmpfs", f"{self.prefix}nspawn", NSPAWN_RUN])
        self.lan.create(device_lan=any(is_device_address(a) for a in self._addresses().values()))
        for node in self.nodes.values():
            self._boot(node)
        self._wait_for_ssh(started + timeout)
        log.info("booted %d nodes in %.1f s", len(self.nodes), time.monotonic() - started)

    def down(self) -> None:
        """Stops every node of this prefix and removes all it created; safe to repeat."""
        started = time.monotonic()
        self._clean()
        atexit.unregister(self.down)
        log.info("tore down fleet %s in %.1f s", self.prefix, time.monotonic() - started)

    def controller_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run in the controller namespace (10.77.0.1), e.g. for Popen."""
        return self.lan.exec_argv(self.lan.controller_namespace, [str(arg) for arg in argv])

    def controller(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Runs ``argv`` in the controller namespace, the only place that reaches the nodes."""
        return subprocess.run(self.controller_argv(argv), **kwargs)

    def ssh_argv(self, node: str, command: Sequence[str] = ()) -> list[str]:
        """An ssh command line logging in to ``node`` as ``pi``, from the controller."""
        address = self.nodes[node].address
        options = ["-i", str(self.ssh_key), *_SSH_OPTIONS]
        return self.controller_argv(["ssh", *options, f"pi@{address}", *command])

    def ssh(
        self, node: str, command: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Runs a shell ``command`` on ``node`` as ``pi`` and captures its output as text."""
        done = subprocess.run(
            self.ssh_argv(node, [command]), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise VirtualFleetError(
                f"{node}: {command!r} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def write_ansible_config(self) -> Path:
        """Writes ``ansible.cfg`` for these nodes; control sockets stay inside the workdir."""
        control_dir = self.workdir / "cp"
        control_dir.mkdir(mode=0o700, exist_ok=True)
        path = self.workdir / "ansible.cfg"
        path.write_text(
            "[defaults]\n"
            "remote_user = pi\n"
            f"private_key_file = {self.ssh_key}\n"
            "host_key_checking = False\n"
            "interpreter_python = /usr/bin/python3\n"
            "forks = 10\n"
            "\n[ssh_connection]\n"
            "pipelining = True\n"
            f"control_path_dir = {control_dir}\n"
            "ssh_args = -o ControlMaster=auto -o ControlPersist=60s"
            " -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR\n"
        )
        return path

    def ansible_env(self) -> dict[str, str]:
        """The environment for ansible commands: this process's plus the fleet's config."""
        return {
            **os.environ,
            "ANSIBLE_CONFIG": str(self.write_ansible_config()),
            "ANSIBLE_NOCOLOR": "1",
        }

    def _addresses(self) -> dict[str, str]:
        return {name: node.address for name, node in self.nodes.items()}

    def _boot(self, node: Node) -> None:
        directory = node.root.parent
        unmount_below(directory)
        shutil.rmtree(directory, ignore_errors=True)
        for part in ("upper", "work", "root"):
            (directory / part).mkdir(parents=True)
        layers = f"lowerdir={self.base},upperdir={directory / 'upper'},workdir={directory / 'work'}"
        run(["mount", "-t", "overlay", f"{self.prefix}{node.name}", "-o", layers, node.root])
        self._personalise(node)
        self.lan.add_node(node.name, node.address)
        cgroups = [
            hierarchy / "fleet" / f"{self.prefix}{node.name}" for hierarchy in cgroup_hierarchies()
        ]
        for cgroup in cgroups:
            cgroup.mkdir(parents=True, exist_ok=True)
        argv = [
            "sh", "-c", _BOOT_LOOP, "boot-loop",
            node.root, f"{self.prefix}{node.name}", node.name, str(uuid.uuid4()),
            f"/run/netns/{self.lan.node_namespace(node.name)}", directory / "stop",
        ]  # fmt: skip
        with (directory / "console.log").open("wb") as console:
            self._loops[node.name] = subprocess.Popen(
                [str(arg) for arg in argv],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=join_cgroups(cgroups, with_parent=not self.keep_running),
            )

    def _personalise(self, node: Node) -> None:
        """Writes the node's name, its peers' names and the harness's SSH key before boot."""
        root = node.root
        (root / "etc/hostname").write_text(f"{node.name}\n")
        peers = "".join(f"{n.address}\t{n.name}\n" for n in self.nodes.values())
        (root / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{CONTROLLER_ADDRESS}\tcontroller\n{peers}"
        )
        public_key = self.ssh_key.with_suffix(".pub").read_text()
        pi = next(
            line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
            if line.startswith("pi:")
        )  # fmt: skip
        for home, uid, gid in ((root / "root", 0, 0), (root / "home/pi", int(pi[2]), int(pi[3]))):
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text(public_key)
            (ssh_dir / "authorized_keys").chmod(0o600)
            for path in (ssh_dir, ssh_dir / "authorized_keys"):
                os.chown(path, uid, gid)

    def _wait_for_ssh(self, deadline: float) -> None:
        pending = list(self.nodes)
        while pending:
            for name in list(pending):
                loop = self._loops[name]
                if loop.poll() is not None:
                    raise VirtualFleetError(
                        f"{name} stopped (exit {loop.returncode}):\n{self._console_tail(name)}"
                    )
                if self.ssh(name, "true", check=False, timeout=10).returncode == 0:
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {name}\n{self._console_tail(name)}" for name in pending)
                raise VirtualFleetError(f"sshd never answered on {', '.join(pending)}:\n{tails}")
            time.sleep(0.2 if pending else 0)

    def _console_tail(self, name: str, lines: int = 30) -> str:
        path = self.nodes[name].root.parent / "console.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _clean(self) -> None:
        """Tears down everything with this prefix, in an order that leaves nothing pinned."""
        self._close_control_masters()
        self._stop_nodes()
        self.lan.remove()
        for mount in mounts():
            if mount.fstype == "overlay" and mount.source.startswith(self.prefix):
                unmount_below(mount.target)
        remove_cgroups(self._cgroups())
        for hierarchy in cgroup_hierarchies():
            with contextlib.suppress(OSError):  # absent, or holding another prefix's fleet
                (hierarchy / "fleet").rmdir()
        ours = any(m.target == NSPAWN_RUN and m.source == f"{self.prefix}nspawn" for m in mounts())
        if ours and not processes_named("systemd-nspawn"):
            unmount_below(NSPAWN_RUN)

    def _close_control_masters(self) -> None:
        """SSH masters keep TCP sockets open, and those keep a deleted namespace alive."""
        control_dir = self.workdir / "cp"
        for path in control_dir.iterdir() if control_dir.is_dir() else []:
            if stat.S_ISSOCK(path.lstat().st_mode):
                subprocess.run(
                    ["ssh", "-O", "exit", "-o", f"ControlPath={path}", "fleet"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )

    def _stop_nodes(self) -> None:
        """Halts the guests cleanly; nspawn turns SIGTERM into an orderly shutdown."""
        for node in self.nodes.values():
            if node.root.parent.is_dir():
                (node.root.parent / "stop").touch()
        stop_cgroups(self._cgroups(), supervisor="systemd-nspawn", grace=STOP_GRACE_S)
        for loop in self._loops.values():
            loop.wait()
        self._loops.clear()

    def _cgroups(self) -> list[Path]:
        return [
            cgroup
            for hierarchy in cgroup_hierarchies()
            for cgroup in sorted((hierarchy / "fleet").glob(f"{self.prefix}*"))
        ]
