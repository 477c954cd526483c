"""The TLS front: the role's nginx.conf.j2 run by a real nginx in front of a real control plane
(the role's gunicorn settings, on a Unix socket, CONTROL_PLANE_HTTPS=1)."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.servers_tls import ControlPlaneBehindFront, FleetCA, Nginx, TlsSlowloris, unix_get
from tests.support import free_port

UPLOAD_PATH = "/admin/plugins/pluginversion/add/"
HUGE = 300 * 1024 * 1024


@dataclass
class Front:
    ca: FleetCA
    nginx: Nginx
    control_plane: ControlPlaneBehindFront

    def connection(self, context: ssl.SSLContext | None = None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "localhost", self.nginx.https_port, context=context or self.ca.client_context()
        )


@dataclass
class Answer:
    status: int
    headers: Message
    body: str


def request(
    front: Front, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str]
) -> Answer:
    connection = front.connection()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def cookies(answer: Answer) -> dict[str, str]:
    """Each Set-Cookie's name and its whole header, so attributes can be checked."""
    return {value.split("=", 1)[0]: value for value in answer.headers.get_all("Set-Cookie", [])}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    workdir = tmp_path_factory.mktemp("front")
    ca = FleetCA(workdir / "ca")
    certificate, key = ca.issue_server(["localhost", "127.0.0.1"])
    https_port = free_port()
    control_plane = ControlPlaneBehindFront(
        workdir / "control-plane", public_url=f"https://localhost:{https_port}"
    )
    control_plane.set_up()
    control_plane.start()
    nginx = Nginx(
        workdir / "nginx",
        certificate,
        key,
        app_servers=[f"unix:{control_plane.socket_path}"],
        https_port=https_port,
    )
    try:
        nginx.start()
        yield Front(ca, nginx, control_plane)
    finally:
        nginx.stop()
        control_plane.stop()


def log_line(front: Front, marker: str, timeout: float = 10.0) -> str:
    """The access log's line for the request carrying ``marker``. nginx writes it when it
    finalises the request, which for a refused body is after its lingering close has seen
    the client go: moments after the client has its answer, so it is waited for."""
    deadline = time.monotonic() + timeout
    while True:
        for line in front.nginx.access_log.read_text().splitlines():
            if marker in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no access log line for {marker} within {timeout} s")
        time.sleep(0.05)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted(front: Front, version: ssl.TLSVersion) -> None:
    context = front.ca.client_context()
    context.minimum_version = context.maximum_version = version
    connection = front.connection(context)

    connection.request("GET", "/healthz")
    response = connection.getresponse()

    assert response.status == 200
    assert connection.sock.version() == version.name.replace("_", ".")
    connection.close()


def test_tls_1_1_is_refused_by_the_server(front: Front) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(front.ca.cert_path)
    # This client would speak TLS 1.1 (OpenSSL 3 allows it at security level 0), so a refusal
    # is the server's: its "protocol version" alert.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings(category=DeprecationWarning, action="ignore"):
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1

    with pytest.raises(ssl.SSLError, match=r"(?i)protocol.version"):
        front.connection(context).request("GET", "/healthz")


def test_a_client_trusting_another_ca_refuses_the_server(front: Front, tmp_path: Path) -> None:
    stranger = FleetCA(tmp_path / "other-ca", name="someone else's CA")

    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        front.connection(stranger.client_context()).request("GET", "/healthz")


def test_plain_http_is_redirected_to_https(front: Front) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", front.nginx.http_port, timeout=5)
    connection.request("GET", "/admin/?next=1", headers={"Host": "localhost"})
    response = connection.getresponse()

    assert response.status == 301
    assert response.headers["Location"] == f"{front.nginx.url}/admin/?next=1"
    connection.close()


def _huge_post(front: Front, path: str, framing: dict[str, str]) -> tuple[int, float]:
    """Sends the headers of a 300 MB POST and one 64 KiB piece; returns nginx's status and
    how long it took to answer."""
    headers = "".join(f"{name}: {value}\r\n" for name, value in framing.items())
    raw = socket.create_connection(("127.0.0.1", front.nginx.https_port), timeout=10)
    with front.ca.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\n{headers}"
            "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode()
        )
        with contextlib.suppress(OSError):  # nginx may already have answered and closed
            sock.sendall(b"x" * 65536)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, time.monotonic() - started


@pytest.mark.parametrize("path", [UPLOAD_PATH, "/api/v1/heartbeat", "/api/v1/enroll"])
def test_a_300_mb_post_is_refused_by_nginx_before_gunicorn_and_never_spooled(
    front: Front, path: str
) -> None:
    marker = uuid.uuid4().hex

    status, seconds = _huge_post(front, f"{path}?{marker}", {"Content-Length": str(HUGE)})

    assert (status, seconds < 2) == (413, True)
    assert "upstream=- " in log_line(front, marker)
    assert front.nginx.spooled_bodies() == []


def test_an_anonymous_chunked_upload_is_refused_before_any_body_is_read(front: Front) -> None:
    marker = uuid.uuid4().hex

    status, seconds = _huge_post(front, f"{UPLOAD_PATH}?{marker}", {"Transfer-Encoding": "chunked"})

    assert (status, seconds < 2) == (403, True)
    assert "upstream=- " in log_line(front, marker)
    assert front.nginx.spooled_bodies() == []


def _healthz_latencies(front: Front, count: int) -> list[float]:
    """``count`` health checks, each on a new TLS connection (as a device's heartbeat is)."""
    latencies = []
    for _ in range(count):
        started = time.monotonic()
        answer = request(front, "GET", "/healthz", headers={})
        assert answer.status == 200, answer.body
        latencies.append(time.monotonic() - started)
    return latencies


def test_200_slowloris_sockets_do_not_delay_health_checks(front: Front) -> None:
    quiet = sorted(_healthz_latencies(front, 40))
    with TlsSlowloris(
        front.nginx.https_port, 200, seconds=60, context=front.ca.client_context()
    ) as attack:
        assert attack.opened == 200
        attacked = sorted(_healthz_latencies(front, 40))

    # gunicorn has 2 sync workers: on bare gunicorn, 2 half-sent requests stall everything.
    assert attacked[-1] < max(1.0, 4 * quiet[-1]), (quiet, attacked)


def test_answers_carry_hsts_and_the_login_page_sets_secure_cookies(front: Front) -> None:
    page = request(front, "GET", "/admin/login/", headers={})

    assert page.status == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "; Secure" in cookies(page)["csrftoken"]


def _log_in(front: Front) -> str:
    """The admin's login form over the front; returns the Cookie header of the session."""
    page = request(front, "GET", "/admin/login/", headers={})
    csrf_cookie = cookies(page)["csrftoken"].split(";", 1)[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    assert token is not None
    answer = request(
        front,
        "POST",
        "/admin/login/?next=/admin/",
        body=urlencode(
            {
                "csrfmiddlewaretoken": token.group(1),
                "username": "admin",
                "password": front.control_plane.admin_password,
                "next": "/admin/",
            }
        ).encode(),
        headers={
            "Cookie": csrf_cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"{front.nginx.url}/admin/login/",
        },
    )
    assert answer.status == 302, answer.body
    session = cookies(answer)["sessionid"]
    assert "; Secure" in session and "; HttpOnly" in session
    return f"{csrf_cookie}; {session.split(';', 1)[0]}"


def test_the_enrollment_token_page_prints_the_https_url(front: Front) -> None:
    cookie = _log_in(front)
    form = request(front, "GET", "/admin/devices/enrollmenttoken/add/", headers={"Cookie": cookie})
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
    assert form.status == 200 and token is not None

    created = request(
        front,
        "POST",
        "/admin/devices/enrollmenttoken/add/",
        body=urlencode(
            {"csrfmiddlewaretoken": token.group(1), "label": "front", "uses_left": "1"}
        ).encode(),
        headers={
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"{front.nginx.url}/admin/devices/enrollmenttoken/add/",
        },
    )

    assert created.status == 200, created.body
    assert f'control_plane_url = "{front.nginx.url}"' in created.body


def test_the_socket_answers_health_checks_and_redirects_everything_else_to_https(
    front: Front,
) -> None:
    socket_path = front.control_plane.socket_path

    assert unix_get(socket_path, "/healthz").status == 200
    redirect = unix_get(socket_path, "/admin/login/")
    assert (redirect.status, redirect.headers["Location"]) == (
        301,
        "https://localhost/admin/login/",
    )
