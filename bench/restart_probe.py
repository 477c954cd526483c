"""The command hyperfine times in bench_restart.py: start a host, return once it serves.

    restart_probe.py start CONFIG URL PLUGINS PIDFILE TIMINGS
    restart_probe.py stop PIDFILE [EVICT_DIR...]

``start`` launches ``device-host serve`` detached (its log beside CONFIG), polls
URL/healthz every 10 ms until ``status`` is ``ok`` with PLUGINS plugins running, appends
its own start-to-ok seconds to TIMINGS and exits, leaving the host running. If the host
has loaded everything but refused a plugin, it records that and exits 1 at once. ``stop``
(hyperfine's ``--prepare``, untimed) ends the host named in PIDFILE, then drops the
``.wasm`` and ``.cwasm`` files under each EVICT_DIR from the page cache, as a reboot would.
Standard library only, so the probe's own start-up stays small.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TIMEOUT_S = 120.0


def start(config: Path, url: str, plugins: int, pidfile: Path, timings: Path) -> int:
    began = time.monotonic()
    with (config.parent / "host.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "device_host", "serve", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=config.parent,
        )
    pidfile.write_text(str(process.pid))
    while time.monotonic() - began < TIMEOUT_S:
        if process.poll() is not None:
            print(f"host exited with {process.returncode}; see {config.parent}/host.log")
            return 1
        state, refused = _state(url, plugins)
        if state is not None:
            seconds = time.monotonic() - began
            entry = {"config": str(config), "seconds": seconds, "ok": state, "refused": refused}
            with timings.open("a") as out:
                out.write(json.dumps(entry) + "\n")
            if not state:
                print(f"host refused plugins: {refused}")
            return 0 if state else 1
        time.sleep(0.01)
    process.kill()
    print(f"host was not serving {plugins} plugins after {TIMEOUT_S} s")
    return 1


def _state(url: str, plugins: int) -> tuple[bool | None, list[str]]:
    """(True, []) once all PLUGINS run; (False, reasons) once loading ended with a refusal."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            health = json.load(response)
    except (OSError, ValueError):
        return None, []
    running = [p for p in health["plugins"] if p["state"] == "running"]
    if health["status"] == "ok" and len(running) == plugins:
        return True, []
    if health["status"] == "degraded":
        failed = [p for p in health["plugins"] if p["state"] == "failed"]
        return False, [f"{p['name']}: {p.get('load_error')}" for p in failed]
    return None, []


def stop(pidfile: Path) -> int:
    """Ends the host; it was orphaned by ``start``, so it cannot be waited for, only watched."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return 0
    pidfile.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    deadline = time.monotonic() + 20
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.02)
    return 0


def evict(directories: list[Path]) -> None:
    """Drops these component files' pages from the page cache (only theirs, nobody else's)."""
    for directory in directories:
        for path in [*directory.rglob("*.cwasm"), *directory.rglob("*.wasm")]:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its new parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"] and len(argv) == 6:
        config, url, plugins, pidfile, timings = argv[1:]
        return start(Path(config), url, int(plugins), Path(pidfile), Path(timings))
    if argv[:1] == ["stop"] and len(argv) >= 2:
        stopped = stop(Path(argv[1]))
        evict([Path(d) for d in argv[2:]])
        return stopped
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
