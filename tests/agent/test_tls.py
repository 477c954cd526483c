"""The device believes only the fleet CA: the right one works, any other certificate is refused."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError, retry_after
from device_host.agent.tls import pinned_context
from device_host.errors import ConfigError
from tests.servers_mqtt import ThrowawayCA, write_private


class _Answers(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/api/v1/heartbeat":
            body = b'{"heartbeat_interval_s": 10.0}'
            self.send_response(200)
        else:
            body = b"{}"
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/api/v1/heartbeat")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def fleet_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[ThrowawayCA, Path]:
    ca = ThrowawayCA("pi-fleet test CA")
    path = tmp_path_factory.mktemp("ca") / "fleet-ca.pem"
    path.write_bytes(ca.cert_pem)
    return ca, path


@pytest.fixture(scope="module")
def https_control_plane(
    fleet_ca: tuple[ThrowawayCA, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 whose certificate the fleet CA issued for "localhost"."""
    directory = tmp_path_factory.mktemp("https")
    cert, key = fleet_ca[0].issue("control plane", server_names=("localhost",))
    (directory / "cert.pem").write_bytes(cert)
    write_private(directory / "key.pem", key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _client(port: int, ca_file: Path, host: str = "localhost") -> ControlPlaneClient:
    return ControlPlaneClient(f"https://{host}:{port}", "token", pinned_context(ca_file))


def test_the_fleet_ca_is_believed(https_control_plane, fleet_ca):
    answer = _client(https_control_plane, fleet_ca[1]).heartbeat({"host_version": "0.4.0"})

    assert answer.heartbeat_interval_s == 10.0


def test_a_certificate_from_another_ca_is_refused(https_control_plane, tmp_path):
    other = tmp_path / "other-ca.pem"
    other.write_bytes(ThrowawayCA("someone else").cert_pem)

    with pytest.raises(ControlPlaneError, match="CERTIFICATE_VERIFY_FAILED"):
        _client(https_control_plane, other).heartbeat({"host_version": "0.4.0"})


def test_a_certificate_for_another_name_is_refused(https_control_plane, fleet_ca):
    with pytest.raises(ControlPlaneError, match=r"CERTIFICATE_VERIFY_FAILED|match"):
        _client(https_control_plane, fleet_ca[1], host="127.0.0.1").heartbeat({})


def test_a_redirect_is_not_followed_with_the_token(https_control_plane, fleet_ca):
    client = _client(https_control_plane, fleet_ca[1])

    with pytest.raises(ControlPlaneError, match="HTTP 302"):
        client.request_channel(
            "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n"
        )


def test_the_context_never_speaks_below_tls_1_2_and_checks_names(fleet_ca):
    context = pinned_context(fleet_ca[1])

    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1


def test_a_missing_ca_file_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"\[agent\] ca_file .*missing.pem: cannot load"):
        pinned_context(tmp_path / "missing.pem")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("5", 5.0), ("999999", 3600.0), ("soon", None), ("-3", None)],
)
def test_retry_after_is_read_in_seconds_and_bounded_to_an_hour(header, seconds):
    assert retry_after(header) == seconds


def test_retry_after_as_an_http_date_counts_from_now():
    assert retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now=1792567700.0) == 10.0
