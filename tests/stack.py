"""The control plane as a real fleet runs it, on loopback: the role's nginx with TLS in front
of gunicorn on a Unix socket, the job worker, and Mosquitto over TLS for notices.

Devices pin ``ca_bundle`` (the CAs of nginx's and the broker's server certificates) and get
their MQTT client certificates from the control plane's device CA at enrollment, as on a
real fleet; only the addresses are loopback.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers_mqtt import Mosquitto
from tests.servers_tls import ControlPlaneBehindFront, FleetCA, Nginx
from tests.support import ControlPlaneProcess


@dataclass
class SecureControlPlane(ControlPlaneBehindFront):
    """`ControlPlaneBehindFront` plus nginx, the broker and the job worker.

    ``stop()``/``start()`` stop and start the application (gunicorn and the worker) as a
    crash or an upgrade would, while nginx and the broker stay up, so devices see 502s;
    ``close()`` stops everything.
    """

    worker: bool = True
    heartbeat_interval_s: float = 1.0
    nginx: Nginx | None = None
    broker: Mosquitto | None = None
    ca_bundle: Path = field(init=False)

    def __post_init__(self) -> None:
        self.ca_bundle = self.workdir / "tls" / "fleet-ca-bundle.pem"

    @property
    def url(self) -> str:
        assert self.nginx is not None, "set_up() first"
        return self.nginx.url

    @property
    def device_ca_cert(self) -> Path:
        return self.workdir / "device-ca.pem"

    def env(self) -> dict[str, str]:
        environment = {
            **super().env(),
            "CONTROL_PLANE_HEARTBEAT_INTERVAL_S": str(self.heartbeat_interval_s),
            "CONTROL_PLANE_DEVICE_CA_CERT_PATH": str(self.device_ca_cert),
            "CONTROL_PLANE_DEVICE_CA_KEY_PATH": str(self.workdir / "device-ca-key.pem"),
        }
        if self.broker is not None:
            environment["CONTROL_PLANE_MQTT_URL"] = self.broker.url
            environment["CONTROL_PLANE_MQTT_CA_FILE"] = str(self.broker.server_ca_file)
        return environment

    def set_up(self) -> None:
        tls = self.workdir / "tls"
        fleet_ca = FleetCA(tls)
        certificate, key = fleet_ca.issue_server(["localhost", "127.0.0.1"])
        self.nginx = Nginx(
            prefix=self.workdir / "nginx",
            certificate=certificate,
            certificate_key=key,
            app_servers=[f"unix:{self.socket_path}"],
        )
        self.public_url = self.nginx.url
        super().set_up()
        self.manage("create_device_ca")
        broker_dir = self.workdir / "broker"
        broker_dir.mkdir(exist_ok=True)
        self.broker = Mosquitto(broker_dir, device_ca_file=self.device_ca_cert)
        self.ca_bundle.write_bytes(
            fleet_ca.cert_path.read_bytes() + self.broker.server_ca_file.read_bytes()
        )

    def start(self, timeout: float = 60.0) -> None:
        assert self.nginx is not None and self.broker is not None, "set_up() first"
        self.broker.start()
        super().start(timeout)
        if self.nginx.process is None or self.nginx.process.poll() is not None:
            self.nginx.start()

    def stop(self) -> None:
        """Stops the application only; its socket's directory stays for the next start."""
        ControlPlaneProcess.stop(self)

    def close(self) -> None:
        self.stop()
        if self.nginx is not None:
            self.nginx.stop()
        if self.broker is not None:
            self.broker.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
