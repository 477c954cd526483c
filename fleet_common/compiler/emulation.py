"""An arm64 Python under qemu-user, so this x86_64 machine can compile plugins for the Pis.

The x86_64 wasmtime wheel has no aarch64 code generator (and a foreign ``Config.target``
aborts the process), but the pinned aarch64 wheel in Debian's arm64 python3.11 runs fine
under ``qemu-aarch64-static`` and writes the same bytes a Pi would. The interpreter and the
wheels live in a sysroot that ``scripts/build-arm64-sysroot`` builds once into the build
cache; this module finds it (building it on first use) and says how to start that Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

QEMU = "qemu-aarch64-static"
REPO = Path(__file__).resolve().parents[2]
"""The directory holding `fleet_common`: the emulated Python imports it from here."""
BUILD_SCRIPT = REPO / "scripts" / "build-arm64-sysroot"
SITE = Path("opt/pi-fleet/site")
"""Where the sysroot keeps the aarch64 wheels, relative to its root."""
SYSROOT_VARIABLE = "PI_FLEET_ARM64_SYSROOT"
"""An installed control plane has no scripts/: Ansible builds the sysroot and names it here."""
BUILD_TIMEOUT_S = 900.0
"""Downloading 28 Debian packages and the wheels, then precompiling the stdlib under qemu."""

_UNSET = ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "VIRTUAL_ENV")
"""Variables of this machine's Python that would point the emulated one at x86_64 files."""


class EmulationUnavailable(RuntimeError):
    """The emulated arm64 Python cannot be started here; the message says what is missing."""


def arm64_sysroot() -> Path:
    """The sysroot's path: ``$PI_FLEET_ARM64_SYSROOT``, or built by
    ``scripts/build-arm64-sysroot`` (in a checkout) if it is not cached yet.

    The script is keyed by its package list and the device lock, so it answers at once when
    the sysroot exists and rebuilds it when either changes.
    """
    if shutil.which(QEMU) is None:
        raise EmulationUnavailable(f"{QEMU} is not installed: run scripts/setup.sh")
    provisioned = os.environ.get(SYSROOT_VARIABLE)
    if provisioned:
        return _checked(Path(provisioned))
    if not BUILD_SCRIPT.is_file():
        raise EmulationUnavailable(f"{BUILD_SCRIPT} is missing: cannot build the arm64 sysroot")
    try:
        done = subprocess.run(
            [str(BUILD_SCRIPT)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulationUnavailable(f"cannot build the arm64 sysroot: {exc}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        problem = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise EmulationUnavailable(f"cannot build the arm64 sysroot: {problem[0]}")
    return _checked(Path(lines[-1]))


def _checked(root: Path) -> Path:
    if not (root / "usr" / "bin" / "python3.11").is_file():
        raise EmulationUnavailable(f"the arm64 sysroot {root} has no usr/bin/python3.11")
    return root


def emulated_python(cpu: str = "cortex-a53") -> tuple[list[str], dict[str, str]]:
    """The argv prefix and full environment that start the sysroot's python3.11 under qemu.

    ``cpu`` is the emulated core: the Cortex-A53 (Pi 3, Zero 2 W) has the fewest features of
    the fleet, so what runs there runs on every Pi. The environment is this process's, with
    the sysroot's wheels and this repository first on PYTHONPATH (so ``-m
    fleet_common.compiler.child`` imports), no user site, and no bytecode written: the
    sysroot's stdlib is precompiled, and nothing lands in the repository.
    """
    root = arm64_sysroot()
    argv = [QEMU, "-L", str(root), "-cpu", cpu, str(root / "usr" / "bin" / "python3.11")]
    env = {name: value for name, value in os.environ.items() if name not in _UNSET}
    env["PYTHONPATH"] = os.pathsep.join([str(root / SITE), str(REPO)])
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return argv, env
