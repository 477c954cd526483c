"""Shared by the virtual fleet tests: the base image, work folders and the leftover check."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.virtual_fleet import VirtualFleet, build_base_image
from tests.virtual_fleet.host import mounts

SERVERS = {"cp1": "10.77.0.2", "cp2": "10.77.0.3", "db": "10.77.0.4", "mqtt": "10.77.0.5"}
"""Two app servers (cp1 also the TLS front and the job worker), PostgreSQL, Mosquitto."""
DEVICES = {"node1": "10.78.0.11", "node2": "10.78.0.12", "node3": "10.78.0.13"}
"""Behind the NAT router: no server can open a connection to them."""
NODES = {**SERVERS, **DEVICES}
REPO = Path(__file__).resolve().parents[2]
FLEET_DIR = REPO / "var" / "virtual-fleet"
ROLES = REPO / "playbooks" / "roles"


TEST_PACKAGES = ("curl", "mosquitto-clients")
"""Tools the tests run on the nodes themselves (a device subscribing with its own cert)."""


def role_packages() -> list[str]:
    """Debian packages the roles install, plus TEST_PACKAGES: baked into the image, since
    nodes are offline. Every role's ``<role>_packages`` default counts."""
    packages = set(TEST_PACKAGES)
    for defaults in sorted(ROLES.glob("*/defaults/main.yml")):
        for key, value in (yaml.safe_load(defaults.read_text()) or {}).items():
            if key.endswith("_packages") and isinstance(value, list):
                packages.update(name for name in value if isinstance(name, str))
    return sorted(packages)


def _host_cannot_run_fleets() -> str | None:
    if os.geteuid() != 0:
        return "a virtual fleet needs root"
    missing = [tool for tool in ("systemd-nspawn", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install systemd-container mmdebstrap"
    return None


@pytest.fixture(scope="session")
def base_image() -> Path:
    """The cached base image; fails, naming what is missing, where fleets cannot run."""
    reason = _host_cannot_run_fleets()
    if reason:
        pytest.fail(
            f"{reason} (make setup installs the tools; run the suite as root)", pytrace=False
        )
    return build_base_image(role_packages(), FLEET_DIR / "images")


@pytest.fixture(scope="session")
def fleet(base_image: Path) -> Iterator[VirtualFleet]:
    """The one fleet every provisioning module shares (a boot is cheap, provisioning is not)."""
    with running_fleet(base_image, NODES) as fleet:
        yield fleet


@contextlib.contextmanager
def running_fleet(base_image: Path, nodes: dict[str, str]) -> Iterator[VirtualFleet]:
    """A booted fleet in a fresh work folder; checks that its teardown left nothing."""
    with fleet_workdir() as workdir:
        with VirtualFleet(workdir, base_image, nodes) as fleet:
            yield fleet
        assert leftovers(fleet) == []


@contextlib.contextmanager
def fleet_workdir() -> Iterator[Path]:
    """A fresh directory under var/, removed once nothing is mounted in it.

    Killed runs leave theirs behind; each later run removes those as well.
    """
    FLEET_DIR.mkdir(parents=True, exist_ok=True)
    yield Path(tempfile.mkdtemp(prefix="test-", dir=FLEET_DIR))
    for path in FLEET_DIR.glob("test-*"):
        if not any(path == m.target or path in m.target.parents for m in mounts()):
            shutil.rmtree(path)


def leftovers(fleet: VirtualFleet) -> list[str]:
    """Whatever of ``fleet`` still exists on the host: namespaces, mounts, cgroups, processes."""
    cgroups = Path("/sys/fs/cgroup")
    found = [f"netns {name}" for name in fleet.lan.namespaces()]
    found += [
        f"mount {m.target} ({m.source})"
        for m in mounts()
        if m.source.startswith(fleet.prefix) or fleet.workdir in m.target.parents
    ]
    for pattern in (f"fleet/{fleet.prefix}*", f"*/fleet/{fleet.prefix}*"):
        found += [f"cgroup {path}" for path in cgroups.glob(pattern)]
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cmdline = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
            if str(fleet.workdir) in cmdline or f"--machine={fleet.prefix}" in cmdline:
                found.append(f"process {proc.name}: {cmdline}")
    return found
