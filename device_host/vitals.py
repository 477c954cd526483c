"""The device's vitals for the control plane, read from /proc, /sys and the OS.

Each read is small and may fail on its own (no thermal zone in a container, no route to the
control plane yet): a value that cannot be read is left out, never an error.
"""

from __future__ import annotations

import os
import socket
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

from fleet_common.wire.health import MAX_VITALS_TEXT, Vitals

MAX_READ_BYTES = 16384
"""/proc and /sys files read here are a few hundred bytes; nothing larger is read."""
_PROC = Path("/proc")
_OS_RELEASE = Path("/etc/os-release")
_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


def read_vitals(state_dir: Path, control_plane_url: str = "") -> Vitals:
    """What this device is and has left, now; ``state_dir``'s file system is its disk."""
    uname = os.uname()
    mem_total, mem_available = _meminfo()
    disk_total, disk_free = _disk(state_dir)
    return Vitals(
        ip=_ip_towards(control_plane_url),
        os=_pretty_name() or uname.sysname,
        kernel=uname.release[:MAX_VITALS_TEXT],
        uptime_s=_uptime(),
        cpu_temp_c=_cpu_temp(),
        mem_total_bytes=mem_total,
        mem_available_bytes=mem_available,
        disk_total_bytes=disk_total,
        disk_free_bytes=disk_free,
    )


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            return file.read(MAX_READ_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None


def _pretty_name() -> str:
    for line in (_read(_OS_RELEASE) or "").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip("\"'")[:MAX_VITALS_TEXT]
    return ""


def _uptime() -> float | None:
    try:
        return round(float((_read(_PROC / "uptime") or "").split()[0]), 1)
    except (IndexError, ValueError):
        return None


def _cpu_temp() -> float | None:
    """The SoC's temperature (a Pi's thermal zone 0 reports millidegrees)."""
    try:
        return round(int((_read(_THERMAL) or "").strip()) / 1000, 1)
    except ValueError:
        return None


def _meminfo() -> tuple[int | None, int | None]:
    fields: dict[str, int] = {}
    for line in (_read(_PROC / "meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("MemTotal", "MemAvailable") and parts and parts[0].isdigit():
            fields[key] = int(parts[0]) * 1024
    return fields.get("MemTotal"), fields.get("MemAvailable")


def _disk(path: Path) -> tuple[int | None, int | None]:
    try:
        stat = os.statvfs(path)
    except OSError:
        return None, None
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize


def _ip_towards(url: str) -> str:
    """The address this device uses to reach ``url``, else its first non-loopback one.

    Connecting a UDP socket sends nothing; it only asks the kernel for the route.
    """
    parts = urlsplit(url)
    if parts.hostname:
        try:
            port = parts.port or 80
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((parts.hostname, port))
                address = str(probe.getsockname()[0])
            if address and not address.startswith("0."):
                return address
        except (OSError, ValueError):
            pass
    return _first_non_loopback()


def _first_non_loopback() -> str:
    """From /proc/net/fib_trie's local host routes: no interface enumeration library needed."""
    text = _read(_PROC / "net" / "fib_trie") or ""
    lines = text.splitlines()
    for previous, line in pairwise(lines):
        if "/32 host LOCAL" in line:
            address = previous.split()[-1] if previous.split() else ""
            if address and not address.startswith("127."):
                return address
    return ""
