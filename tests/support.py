"""Small factories for tests: built plugins, plugin folders, and device host processes."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEST_PLUGINS = REPO / "tests" / "plugins"
EXAMPLE_PLUGINS = REPO / "plugins"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def place_plugin(
    built: Path, plugins_dir: Path, *, folder: str | None = None, manifest: str | None = None
) -> Path:
    """Puts a built plugin folder into ``plugins_dir`` (hard-linking the 18 MB component)."""
    target = plugins_dir / (folder or built.name)
    target.mkdir(parents=True, exist_ok=True)
    for source in built.iterdir():
        if not source.is_file():
            continue
        destination = target / source.name
        destination.unlink(missing_ok=True)
        if source.suffix == ".wasm":
            os.link(source, destination)
        else:
            shutil.copy2(source, destination)
    if manifest is not None:
        (target / "manifest.toml").write_text(manifest)
    return target


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Hammer:
    """Clients requesting the page in a loop until stopped; records every answer."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.answers: Counter[tuple[int, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                answer = http_get(self.url, timeout=10)
            except OSError as error:
                answer = (0, repr(error))
            with self._lock:
                self.answers[answer] += 1


@dataclass
class HostProcess:
    """A real ``device-host serve`` process on a loopback port."""

    workdir: Path
    compiled_dir: Path
    settings: dict[str, dict[str, object]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    listener: socket.socket | None = None
    """A listening socket handed over as systemd does (socket activation), instead of a port."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def plugins_dir(self) -> Path:
        return self.workdir / "plugins"

    @property
    def log_path(self) -> Path:
        return self.workdir / "host.log"

    def start(self, *, wait_for: str = "ok", timeout: float = 120.0) -> None:
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "plugins": {"dir": str(self.plugins_dir), "poll_interval_s": 0.2, "source": "local"},
            "state": {"dir": str(self.workdir / "state"), "compiled_dir": str(self.compiled_dir)},
            "sensor": {"interval_s": 0.2, "stale_after_s": 5.0},
        }
        for section, values in self.settings.items():
            config.setdefault(section, {}).update(values)
        config_path = self.workdir / "host.toml"
        config_path.write_text(_toml(config))
        log = self.log_path.open("ab")
        argv = [sys.executable, "-m", "device_host", "serve", "-c", str(config_path)]
        prepare, passed = die_with_parent, ()
        if self.listener is not None:
            argv = ["/bin/sh", "-c", 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"', "sh", *argv]
            prepare, passed = partial(_hand_over, self.listener.fileno()), (3,)
        self.process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            pass_fds=passed,
            preexec_fn=prepare,
        )
        self.wait_for_status(wait_for, timeout)

    def wait_for_status(self, status: str, timeout: float = 60.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                code, body = http_get(self.url + "/healthz", timeout=2)
                last = json.loads(body)
                if code == 200 and last["status"] == status:  # type: ignore[index]
                    return last  # type: ignore[return-value]
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"host never reached {status!r}; last /healthz: {last}\n{self.log()}")

    def healthz(self) -> dict[str, object]:
        return json.loads(http_get(self.url + "/healthz")[1])  # type: ignore[no-any-return]

    def plugin(self, name: str) -> dict[str, object]:
        for plugin in self.healthz()["plugins"]:  # type: ignore[attr-defined]
            if plugin["name"] == name:
                return plugin  # type: ignore[no-any-return]
        raise AssertionError(f"no plugin {name} in /healthz")

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _hand_over(listening_fd: int) -> None:
    """In the child: the listening socket becomes fd 3, where systemd puts the first one."""
    os.dup2(listening_fd, 3)
    die_with_parent()


def die_with_parent() -> None:
    """A killed test run must not leave host processes behind (Linux PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def _toml(config: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def build_against(wit_dir: Path, world: str, app_dir: Path, output: Path) -> Path:
    """Builds ``app_dir/app.py`` against any WIT (forged contracts too), cached by content."""
    from device_host.build import default_build_cache

    digest = hashlib.sha256(world.encode())
    for path in sorted([*wit_dir.rglob("*.wit"), app_dir / "app.py"]):
        digest.update(path.read_bytes())
    cached = default_build_cache() / f"custom-{digest.hexdigest()}.wasm"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        componentize_py = Path(sys.executable).with_name("componentize-py")
        subprocess.run(
            [
                str(componentize_py),
                "-d",
                str(wit_dir),
                "-w",
                world,
                "componentize",
                "app",
                "-p",
                str(app_dir),
                "-o",
                str(cached),
            ],
            check=True,
            capture_output=True,
        )
    shutil.copyfile(cached, output)
    return output


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    """Polls ``predicate`` until it returns something truthy; fails after ``timeout``.

    A predicate that is slow to ask (one that starts ``manage.py``: a second of CPU) is
    asked at most half the time, so a long wait does not take a core from the other lane.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asked = time.monotonic()
        value = predicate()
        if value:
            return value
        time.sleep(max(0.05, time.monotonic() - asked))
    raise AssertionError(f"timed out waiting for {what or predicate}")


ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,900",
]


def browse(url: str, screenshot: str, *, settle_ms: int = 4000) -> str:
    """Loads ``url`` in headless Chromium, lets its scripts run, keeps a screenshot.

    Returns the DOM as a person's browser has it after ``settle_ms`` of page time; the
    screenshot goes to tests/artifacts/ for a person to look at.
    """
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        common = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={settle_ms}",
        ]
        dom = subprocess.run(
            [*common, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        subprocess.run(
            [*common, f"--screenshot={ARTIFACTS / screenshot}", url],
            capture_output=True,
            timeout=60,
            check=True,
        )
    return dom


@dataclass
class ControlPlaneProcess:
    """A real control plane: migrated database, signing key, admin user, gunicorn on loopback,
    and its job worker (``manage.py qcluster``) unless ``worker=False``.

    The job limits are short so a test that kills the worker mid-job sees the job handed out
    again within a minute: a native compile of an 18 MB component takes 10-20 s on a busy
    2-core machine, so 45 s is its timeout, and 60 s of retry also covers the two jobs the
    broker takes ahead of the running one.
    """

    workdir: Path
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    admin_password: str = "fleet-admin-pw"
    worker: bool = True
    worker_process: subprocess.Popen[bytes] | None = None
    job_timeout_s: int = 45
    job_retry_s: int = 60
    compiled_dir: Path | None = None
    """Shared with other tests by content hash, so each component compiles once per run."""
    cross: bool = False
    """Compile for aarch64 too (a second worker, emulated compiles); off: x86_64 only."""
    cross_process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def trusted_keys_dir(self) -> Path:
        return self.workdir / "trusted-keys"

    @property
    def signing_key_path(self) -> Path:
        return self.workdir / "signing-key.pem"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTROL_PLANE_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
            "CONTROL_PLANE_DEBUG": "0",
            "CONTROL_PLANE_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CONTROL_PLANE_DATABASE_URL": self.database_url
            or f"sqlite:///{self.workdir / 'control-plane.sqlite3'}",
            "CONTROL_PLANE_SIGNING_KEY_PATH": str(self.signing_key_path),
            "CONTROL_PLANE_HEARTBEAT_INTERVAL_S": "1",
            "CONTROL_PLANE_STATIC_ROOT": str(self.workdir / "static"),
            "CONTROL_PLANE_JOB_WORKERS": "1",
            "CONTROL_PLANE_JOB_TIMEOUT_S": str(self.job_timeout_s),
            "CONTROL_PLANE_JOB_RETRY_S": str(self.job_retry_s),
            "CONTROL_PLANE_JOBS_SYNC": "0",
            # What devices download is the same at any level; 9 costs 3 s of CPU per version.
            "CONTROL_PLANE_ARTIFACT_ZSTD_LEVEL": "1",
            "DJANGO_SUPERUSER_PASSWORD": self.admin_password,
            **(
                {"CONTROL_PLANE_COMPILED_CACHE_DIR": str(self.compiled_dir)}
                if self.compiled_dir is not None
                else {}
            ),
        }

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(REPO / "control_plane" / "manage.py"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (
            f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        )
        return done.stdout

    def shell(self, code: str) -> Any:
        """Runs ``code`` in ``manage.py shell``; it must set ``result`` (JSON-encodable)."""
        program = f"import json\n{code}\nprint(json.dumps(result))"
        return json.loads(self.manage("shell", "-c", program).strip().splitlines()[-1])

    def read_blob(self, sha256: str) -> bytes:
        """The stored (zstd) bytes of an artifact, as devices download them."""
        path = self.workdir / f"blob-{sha256}"
        self.shell(
            "from pathlib import Path\nfrom control_plane.blobs.models import BlobChunk\n"
            f"chunks = BlobChunk.objects.filter(blob_id={sha256!r}).order_by('index')\n"
            f"result = Path({str(path)!r}).write_bytes(b''.join(bytes(c.data) for c in chunks))"
        )
        data = path.read_bytes()
        path.unlink()
        return data

    def write_blob(self, sha256: str, data: bytes) -> None:
        """Replaces an artifact's stored bytes in the database: a compromised or failing
        store, which devices must catch by the signed digest and size."""
        path = self.workdir / f"blob-{sha256}"
        path.write_bytes(data)
        self.shell(
            "from pathlib import Path\nfrom control_plane.blobs.models import Blob, BlobChunk\n"
            f"data = Path({str(path)!r}).read_bytes()\n"
            f"blob = Blob.objects.get(pk={sha256!r})\n"
            "BlobChunk.objects.filter(blob=blob).delete()\n"
            "BlobChunk.objects.create(blob=blob, index=0, data=data)\n"
            "blob.size, blob.chunk_count = len(data), 1\n"
            "blob.save()\nresult = len(data)"
        )
        path.unlink()

    def set_up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        self.manage("create_signing_key")
        self.trusted_keys_dir.mkdir(exist_ok=True)
        public_key = self.manage("export_public_key").strip().splitlines()[-1]
        (self.trusted_keys_dir / "fleet.pub").write_text(public_key + "\n")
        self.manage(
            "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@fleet.example"
        )
        if not self.cross:
            self.manage("device_class", "aarch64", "--disable")

    def enrollment_token(self, uses: int = 1) -> str:
        output = self.manage("create_enrollment_token", "--label", "test", "--uses", str(uses))
        return output.strip().splitlines()[-1].split()[-1]

    def gunicorn_options(self) -> list[str]:
        """How gunicorn serves this control plane: on loopback, threaded."""
        return ["--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4"]

    def answering(self) -> bool:
        """Whether the started control plane answers yet."""
        return _answers(self.url + "/admin/login/")

    def start(self, timeout: float = 60.0) -> None:
        log = (self.workdir / "control-plane.log").open("ab")
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [str(gunicorn), *self.gunicorn_options(), "control_plane.wsgi:application"],
            env=self.env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        wait_until(self.answering, timeout, "the control plane")
        if self.worker:
            self.start_worker()
        if self.cross:
            self.cross_process = self._qcluster("cross-worker.log", "pi-fleet-cross", timeout)

    def start_worker(self, timeout: float = 30.0) -> None:
        """Starts ``manage.py qcluster`` in a process group of its own and waits until it
        says it is running; jobs enqueued meanwhile wait in the database."""
        assert self.worker_process is None or self.worker_process.poll() is not None
        self.worker_process = self._qcluster("worker.log", None, timeout)

    def _qcluster(
        self, log_name: str, queue: str | None, timeout: float
    ) -> subprocess.Popen[bytes]:
        log_path = self.workdir / log_name
        already = log_path.stat().st_size if log_path.exists() else 0
        log = log_path.open("ab")
        env = self.env() if queue is None else {**self.env(), "Q_CLUSTER_NAME": queue}
        process = subprocess.Popen(
            [sys.executable, str(REPO / "control_plane" / "manage.py"), "qcluster"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

        def running() -> bool:
            assert process.poll() is None, f"the job worker exited:\n{self.worker_log()}"
            return "running." in log_path.read_bytes()[already:].decode(errors="replace")

        wait_until(running, timeout, "the job worker")
        return process

    def kill_worker(self) -> None:
        """SIGKILLs the whole cluster (guard, pusher, monitor, workers, their compile
        children), as a crash or the OOM killer would: a job it held is redone after
        ``job_retry_s``."""
        process = self.worker_process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.worker_process = None

    def stop_worker(self, grace_s: float = 10.0) -> None:
        """SIGTERM (the cluster finishes its running job), then SIGKILL after ``grace_s``."""
        process = self.worker_process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_s)
        self.kill_worker()

    def stop(self) -> None:
        self.stop_worker()
        if self.cross_process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.cross_process.pid, signal.SIGKILL)
            self.cross_process.wait(timeout=10)
            self.cross_process = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        self.process = None

    def log(self) -> str:
        path = self.workdir / "control-plane.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_log(self) -> str:
        path = self.workdir / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False
