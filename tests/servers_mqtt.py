"""A real Mosquitto for tests, configured by the broker role's own templates, and a
throwaway certificate authority to give it and its clients certificates.

The broker is rendered from ``playbooks/roles/broker/templates`` with jinja2 (strict: a
variable the templates gain and this runner does not set fails here, not in production),
listens on a free loopback port, and keeps its retained messages across ``stop``/``start``
as the production broker does. Its server certificate comes from its own throwaway CA
(``server_ca_file``, what clients pin); client certificates must come from the CA
passed in as ``device_ca_file``, as the broker role configures it.

``ThrowawayCA`` and ``write_private`` are re-exported from `tests.throwaway_ca`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import jinja2

from tests.support import REPO, free_port
from tests.throwaway_ca import ThrowawayCA, write_private

__all__ = ["Mosquitto", "ThrowawayCA", "render_broker_config", "write_private"]

MOSQUITTO = "/usr/sbin/mosquitto"
TEMPLATES = REPO / "playbooks" / "roles" / "broker" / "templates"
TOPIC_PREFIX = "pi-fleet/devices"
PUBLISHER_IDENTITY = "control-plane"


def render_broker_config(directory: Path, variables: dict[str, object]) -> Path:
    """Renders the role's acl.j2 and mosquitto.conf.j2 into ``directory``; returns the conf."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    acl = directory / "acl"
    acl.write_text(environment.get_template("acl.j2").render(variables))
    conf = directory / "mosquitto.conf"
    conf.write_text(
        environment.get_template("mosquitto.conf.j2").render(
            {**variables, "broker_acl_file": str(acl)}
        )
    )
    return conf


class Mosquitto:
    """One mosquitto process on 127.0.0.1 trusting ``device_ca_file`` for clients.

    ``url`` is what a device or the control plane is told (``mqtts://127.0.0.1:<port>``);
    clients pin ``server_ca_file``. The port stays the same across ``stop``/``start``.
    """

    def __init__(self, directory: Path, device_ca_file: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"mqtts://127.0.0.1:{self.port}"
        self.server_ca = ThrowawayCA("pi-fleet test broker CA")
        self.server_ca_file = directory / "broker-ca.pem"
        self.server_ca_file.write_bytes(self.server_ca.cert_pem)
        cert, key = self.server_ca.issue("broker", server_names=("127.0.0.1", "localhost"))
        (directory / "broker.pem").write_bytes(cert)
        write_private(directory / "broker-key.pem", key)
        persistence = directory / "persistence"
        persistence.mkdir(exist_ok=True)
        self.log_file = directory / "mosquitto.log"
        self.config = render_broker_config(
            directory,
            {
                "broker_user": "root" if os.geteuid() == 0 else "mosquitto",
                "broker_listen_address": "127.0.0.1",
                "broker_port": self.port,
                "broker_device_ca_file": str(device_ca_file),
                "broker_cert_file": str(directory / "broker.pem"),
                "broker_key_file": str(directory / "broker-key.pem"),
                "broker_persistence_dir": f"{persistence}/",
                "broker_log_dest": f"file {self.log_file}",
                "broker_max_connections": 200,
                "broker_max_packet_size": 4096,
                "broker_topic_prefix": TOPIC_PREFIX,
                "broker_publisher_identity": PUBLISHER_IDENTITY,
            },
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Starts the broker and returns once its listener accepts connections."""
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "stderr.log").open("ab"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"mosquitto exited at start:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log()}")

    def stop(self) -> None:
        """Stops the broker (it saves retained messages on the way out)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        """The broker's log and stderr so far (for assertion messages)."""
        parts = [
            path.read_text(errors="replace")
            for path in (self.log_file, self.directory / "stderr.log")
            if path.exists()
        ]
        return "\n".join(parts)

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
