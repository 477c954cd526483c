"""The Debian root filesystem every node boots from, built once by mmdebstrap and cached.

Nodes are offline on purpose, so every package a playbook installs must already be in the
image. The image carries no identity (machine-id, hostname, SSH host keys) and no SSH client
key: each node gets those at boot, so one cached image serves every fleet.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.virtual_fleet.host import require_root, run, unmount_below

log = logging.getLogger(__name__)

RECIPE_VERSION = 2
SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
    "iputils-ping",
    "sudo",
)
MASKED_UNITS = (
    "getty@tty1.service",
    "console-getty.service",
    "apt-daily.service",
    "apt-daily.timer",
    "apt-daily-upgrade.service",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)
# Servers that Debian's packages enable at install. Every node carries them (one image serves
# all), so they start nowhere until a role enables them where they belong.
DISABLED_SERVICES = ("postgresql.service", "nginx.service", "mosquitto.service")
SSH_HOST_KEYS_DROP_IN = """\
# Every node generates its own host keys on first boot; the image has none.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""
SSHD_CONFIG = "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def build_base_image(packages: Sequence[str], cache_dir: Path) -> Path:
    """Returns the cached image for ``packages`` (plus BASE_PACKAGES), building it if missing.

    The build goes to a temporary directory beside the cache entry and is renamed into place
    only when complete, so an interrupted build never leaves half an image. A lock serialises
    concurrent builders; whoever holds it removes temporary directories of dead builds.
    """
    require_root("mmdebstrap", "chroot")
    wanted = sorted(set(BASE_PACKAGES) | set(packages))
    bad = [name for name in wanted if not _PACKAGE_NAME.match(name)]
    if bad:
        raise ValueError(f"not Debian package names: {', '.join(bad)}")
    arch = run(["dpkg", "--print-architecture"]).strip()
    key = json.dumps([wanted, SUITE, arch, RECIPE_VERSION]).encode()
    image = cache_dir / f"base-{hashlib.sha256(key).hexdigest()}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.is_dir():
            return image
        for stale in cache_dir.glob(".building-*"):
            unmount_below(stale)
            shutil.rmtree(stale)
        started = time.monotonic()
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_dir))
        try:
            _mmdebstrap(building, wanted, arch)
            _customise(building)
        except BaseException:
            unmount_below(building)
            shutil.rmtree(building, ignore_errors=True)
            raise
        building.chmod(0o755)
        building.rename(image)
    log.info("built base image %s in %.1f s", image.name, time.monotonic() - started)
    return image


def host_mirror() -> str:
    """The host's own Debian mirror for SUITE, so the build works wherever the host's apt does."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            found = re.findall(r"^([\w-]+):(.*)$", stanza, re.MULTILINE)
            fields: dict[str, list[str]] = {key: value.split() for key, value in found}
            if SUITE in fields.get("Suites", []) and "deb" in fields.get("Types", []):
                return fields["URIs"][0]
    legacy = Path("/etc/apt/sources.list")
    for line in legacy.read_text().splitlines() if legacy.exists() else []:
        match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
        if match and match[2] == SUITE:
            return match[1]
    return FALLBACK_MIRROR


def _mmdebstrap(root: Path, packages: list[str], arch: str) -> None:
    run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            f"--architectures={arch}",
            f"--include={','.join(packages)}",
            SUITE,
            root,
            host_mirror(),
        ],
        timeout=1800,
    )


def _customise(root: Path) -> None:
    """Strips per-machine identity and sets up the ``pi`` user and a quiet, offline boot."""
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").unlink(missing_ok=True)
    for host_key in (root / "etc/ssh").glob("ssh_host_*"):
        host_key.unlink()
    _write(root / "etc/systemd/system/ssh.service.d/host-keys.conf", SSH_HOST_KEYS_DROP_IN)
    _write(root / "etc/ssh/sshd_config.d/virtual-fleet.conf", SSHD_CONFIG)
    run(
        [
            "chroot",
            root,
            "useradd",
            "--create-home",
            "--shell",
            "/bin/bash",
            "--password",
            "*",
            "pi",
        ]
    )
    _write(root / "etc/sudoers.d/pi", "pi ALL=(ALL) NOPASSWD:ALL\n", mode=0o440)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for wants in (root / "etc/systemd/system").glob("*.wants"):
        for service in DISABLED_SERVICES:
            (wants / service).unlink(missing_ok=True)
    for cache in [
        *(root / "var/cache/apt").glob("*.bin"),
        *(root / "var/cache/apt/archives").glob("*.deb"),
        *(root / "var/lib/apt/lists").glob("*_*"),
    ]:
        cache.unlink()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
