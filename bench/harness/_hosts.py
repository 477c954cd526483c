"""Device host processes on loopback ports, and what /proc says about them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._paths import BENCH, COMPILED, PYTHON, WORK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def toml_text(config: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Host:
    """A device host process on a loopback port, serving the plugins placed in its folder.

    ``native=True`` runs ``bench/native_server.py`` instead of ``device-host serve``: the
    same host and app, plus the benchmark-only routes.
    """

    workdir: Path
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    native: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the host process (e.g. glibc malloc tunables)."""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def plugins_dir(self) -> Path:
        return self.workdir / "plugins"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def config_path(self) -> Path:
        return self.workdir / "host.toml"

    def write_config(self) -> Path:
        config: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "plugins": {
                "dir": str(self.plugins_dir),
                "source": "local",
                "poll_interval_s": 0.2,
            },
            "state": {"dir": str(self.workdir / "state"), "compiled_dir": str(COMPILED)},
            "sensor": {"driver": "simulated", "pins": [4], "interval_s": 2.0},
        }
        for section, values in self.settings.items():
            config.setdefault(section, {}).update(values)
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(toml_text(config))
        return self.config_path

    def command(self) -> list[str]:
        if self.native:
            return [PYTHON, str(BENCH / "native_server.py"), "-c", str(self.config_path)]
        return [PYTHON, "-m", "device_host", "serve", "-c", str(self.config_path)]

    def start(self, timeout: float = 180.0) -> float:
        """Starts the process; returns the seconds until /healthz said ``ok`` with every plugin
        placed in its folder running."""
        self.write_config()
        log = (self.workdir / "host.log").open("ab")
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )
        log.close()
        self.wait_until_ok(timeout)
        return time.monotonic() - started

    def wait_until_ok(self, timeout: float = 60.0) -> dict[str, Any]:
        expected = len(list(self.plugins_dir.glob("*/manifest.toml")))
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"host exited early; log:\n{self.log()[-3000:]}")
            try:
                code, body = http_get(self.url + "/healthz", timeout=2)
                last = json.loads(body)
                running = [p for p in last["plugins"] if p["state"] == "running"]
                if code == 200 and last["status"] == "ok" and len(running) == expected:
                    return dict(last)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"host never became ok; last /healthz: {last}\n{self.log()[-3000:]}")

    def healthz(self) -> dict[str, Any]:
        return dict(json.loads(http_get(self.url + "/healthz")[1]))

    def plugin(self, name: str) -> dict[str, Any]:
        for plugin in self.healthz()["plugins"]:
            if plugin["name"] == name:
                return dict(plugin)
        raise KeyError(f"no plugin {name} in /healthz")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        path = self.workdir / "host.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def fresh_workdir(name: str) -> Path:
    path = WORK / "hosts" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def memory_of(pid: int) -> dict[str, int]:
    """kB figures from /proc: smaps_rollup (Rss, Pss and its parts) and status (VmHWM)."""
    memory: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        memory[key] = int(rest.split()[0])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmHWM", "VmRSS", "VmSize", "Threads"}:
            memory[key] = int(rest.split()[0])
    return memory
