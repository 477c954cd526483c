"""The TLS front for tests and benchmarks: a throwaway fleet CA, the role's nginx.conf.j2 run
by a real nginx on loopback, and a control plane behind it on a Unix socket."""

from __future__ import annotations

import http.client
import os
import pwd
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from tests.support import REPO, ControlPlaneProcess, die_with_parent, free_port, wait_until
from tests.throwaway_ca import FleetCA

__all__ = [
    "ControlPlaneBehindFront",
    "FleetCA",
    "Nginx",
    "TlsSlowloris",
    "render_front",
    "unix_get",
]

NGINX = Path("/usr/sbin/nginx")
TEMPLATE = REPO / "playbooks" / "roles" / "control_plane" / "templates" / "nginx.conf.j2"


def render_front(variables: dict[str, object]) -> str:
    """The role's nginx.conf.j2 with ``variables``; an undefined one fails the render."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.from_string(TEMPLATE.read_text()).render(**variables)


@dataclass
class Nginx:
    """A real nginx running the role's template in ``prefix``, on free loopback ports."""

    prefix: Path
    certificate: Path
    certificate_key: Path
    app_servers: list[str]
    server_name: str = "localhost"
    https_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    overrides: dict[str, object] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://{self.server_name}:{self.https_port}"

    @property
    def temp_dir(self) -> Path:
        return self.prefix / "temp"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def variables(self) -> dict[str, object]:
        running_as = pwd.getpwuid(os.geteuid()).pw_name
        return {
            # As root nginx would drop its workers to nobody, who cannot reach a test's files.
            "control_plane_nginx_user": running_as if os.geteuid() == 0 else "",
            "control_plane_nginx_pid_file": str(self.prefix / "nginx.pid"),
            "control_plane_nginx_error_log": str(self.error_log),
            "control_plane_nginx_access_log": str(self.access_log),
            "control_plane_nginx_temp_dir": str(self.temp_dir),
            "control_plane_nginx_worker_connections": 4096,
            "control_plane_server_names": [self.server_name],
            "control_plane_public_url": self.url,
            "control_plane_https_listen": [f"127.0.0.1:{self.https_port}"],
            "control_plane_http_listen": [f"127.0.0.1:{self.http_port}"],
            "control_plane_tls_certificate": str(self.certificate),
            "control_plane_tls_certificate_key": str(self.certificate_key),
            "control_plane_app_servers": self.app_servers,
            "control_plane_api_body_max": "1m",
            "control_plane_upload_body_max": "65m",
            "control_plane_enroll_rate": "30r/m",
            "control_plane_enroll_burst": 30,
            "control_plane_api_rate": "100r/s",
            "control_plane_api_burst": 1000,
            "control_plane_api_connections": 500,
            "control_plane_retry_after_s": 10,
            "control_plane_session_cookie": "sessionid",
            "control_plane_internal_listen": "",
            **self.overrides,
        }

    def start(self, timeout: float = 15.0) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(exist_ok=True)
        config = self.prefix / "nginx.conf"
        config.write_text(render_front(self.variables()))
        argv = [str(NGINX), "-p", str(self.prefix), "-e", str(self.error_log), "-c", str(config)]
        tested = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
        assert tested.returncode == 0, f"nginx -t refused the rendered template:\n{tested.stderr}"
        self.process = subprocess.Popen(
            [*argv, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        wait_until(lambda: self._accepts(self.https_port), timeout, "nginx")

    def _accepts(self, port: int) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def spooled_bodies(self) -> list[Path]:
        """Request bodies nginx wrote to disk (it deletes each when the request ends)."""
        body_dir = self.temp_dir / "body"
        return [path for path in body_dir.rglob("*") if path.is_file()] if body_dir.exists() else []


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over gunicorn's Unix socket, as a health check on the host itself does."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


def unix_get(path: Path, url: str) -> http.client.HTTPResponse:
    """GET ``url`` over the socket at ``path``; the answer's body is already read."""
    connection = UnixHTTPConnection(path)
    try:
        connection.request("GET", url)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


@dataclass
class ControlPlaneBehindFront(ControlPlaneProcess):
    """The control plane as the role runs it: the role's gunicorn settings (sync workers) on a
    Unix socket, ``CONTROL_PLANE_HTTPS=1`` and a public https URL; no job worker."""

    public_url: str = ""
    gunicorn_workers: int = 2
    worker: bool = False
    socket_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cp-sock-")))

    @property
    def socket_path(self) -> Path:
        """Short on purpose: a Unix socket path is at most 107 bytes."""
        return self.socket_dir / "gunicorn.sock"

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "CONTROL_PLANE_HTTPS": "1",
            "CONTROL_PLANE_PUBLIC_URL": self.public_url,
            "CONTROL_PLANE_HEARTBEAT_INTERVAL_S": "10",
        }

    def gunicorn_options(self) -> list[str]:
        """The role's settings (sync workers), on the Unix socket nginx proxies to."""
        return [
            "--config",
            "python:control_plane.gunicorn_settings",
            "--bind",
            f"unix:{self.socket_path}",
            "--workers",
            str(self.gunicorn_workers),
        ]

    def answering(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        try:
            return unix_get(self.socket_path, "/healthz").status == 200
        except OSError:
            return False

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


class TlsSlowloris:
    """Keeps ``count`` TLS connections open, each having finished the handshake and sent part
    of a request's headers; reopens every one the server closes, for at most ``seconds``.

    Handshakes are blocking (a few ms each on loopback) and made by the attack's own thread,
    so ``opened`` grows while the attack ramps up; reads are multiplexed."""

    PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: "

    def __init__(self, port: int, count: int, seconds: float, context: ssl.SSLContext) -> None:
        self._port, self._count, self._seconds, self._context = port, count, seconds, context
        self.opened = 0
        self.closed_by_server = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TlsSlowloris:
        """Returns once ``count`` connections are open (or after 60 s: see ``opened``)."""
        self._thread.start()
        deadline = time.monotonic() + 60
        while self.opened < self._count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _open(self, selector: selectors.DefaultSelector) -> None:
        try:
            raw = socket.create_connection(("127.0.0.1", self._port), timeout=5)
            sock = self._context.wrap_socket(raw, server_hostname="localhost")
            sock.sendall(self.PARTIAL)
        except OSError:
            self.failed += 1
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        self.opened += 1

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        deadline = time.monotonic() + self._seconds
        try:
            for _ in range(self._count):
                if self._stop.is_set():
                    return
                self._open(selector)
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, _events in selector.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, ssl.SSLSocket)
                    try:
                        data = sock.recv(4096)
                    except ssl.SSLWantReadError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self.closed_by_server += 1
                        selector.unregister(sock)
                        sock.close()
                        self._open(selector)
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()
