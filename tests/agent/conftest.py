"""A scripted control plane on loopback, and one signed-mode device host talking to it."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_common.wire.statements import desired_state_statement, encode_public_key, sign
from tests.support import HostProcess, wait_until

GOOD_TOKEN = "device-token-0123456789"
GOOD_ENROLL = {"device_id": "d-7", "device_token": GOOD_TOKEN, "heartbeat_interval_s": 1}
GOOD_HEARTBEAT = b'{"desired": null, "heartbeat_interval_s": 1}'


@dataclass
class ScriptedControlPlane:
    """Answers enroll and heartbeat with whatever bytes a test sets, and records the calls."""

    enroll_answers: list[bytes] = field(default_factory=lambda: [json.dumps(GOOD_ENROLL).encode()])
    """Answered in order; the last one repeats."""
    heartbeat_answer: bytes = GOOD_HEARTBEAT
    heartbeat_refusal: tuple[int, bytes, dict[str, str]] | None = None
    """When set, (status, body, headers) answers each heartbeat instead: one attribute, so
    a handler never sees half of a change."""
    channel: Callable[[bytes], tuple[int, bytes]] = lambda _body: (503, b'{"error": "no broker"}')
    """Answers ``POST /api/v1/channel`` from its body."""
    channel_requests: list[bytes] = field(default_factory=list)
    enroll_bodies: list[bytes] = field(default_factory=list)
    enrolls: list[float] = field(default_factory=list)
    heartbeats: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, Authorization header) of each heartbeat."""
    heartbeat_bodies: list[bytes] = field(default_factory=list)
    """The body of each heartbeat, in order."""
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/api/v1/enroll":
                    script.enroll_bodies.append(body)
                    script.enrolls.append(time.monotonic())
                    index = min(len(script.enrolls), len(script.enroll_answers)) - 1
                    self._answer(201, script.enroll_answers[index])
                elif self.path == "/api/v1/heartbeat":
                    auth = self.headers.get("Authorization", "")
                    script.heartbeat_bodies.append(body)
                    script.heartbeats.append((time.monotonic(), auth))
                    refusal = script.heartbeat_refusal
                    if refusal is None:
                        self._answer(200, script.heartbeat_answer)
                    else:
                        self._answer(*refusal)
                elif self.path == "/api/v1/channel":
                    script.channel_requests.append(body)
                    self._answer(*script.channel(body))
                else:
                    self._answer(404, b"{}")

            def _answer(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def wait_for_heartbeats(self, more: int, timeout: float = 20.0) -> None:
        """Waits until ``more`` heartbeats arrived after this call."""
        target = len(self.heartbeats) + more
        wait_until(lambda: len(self.heartbeats) >= target, timeout, f"{more} more heartbeat(s)")


@dataclass
class AgentUnderTest:
    control_plane: ScriptedControlPlane
    host: HostProcess
    fleet_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    """Trusted by the host: what it signs (`desired_answer`) is accepted."""
    sequences: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def desired_answer(self, sequence: int | None = None) -> tuple[int, bytes]:
        """A heartbeat answer with a signed, empty desired state newer than any before."""
        sequence = next(self.sequences) if sequence is None else sequence
        statement = desired_state_statement(GOOD_ENROLL["device_id"], sequence, [], [])
        envelope = sign(statement, self.fleet_key)
        return sequence, json.dumps({"desired": envelope, "heartbeat_interval_s": 1}).encode()

    def status(self) -> dict[str, object]:
        agent = self.host.healthz()["agent"]
        assert isinstance(agent, dict)
        return agent

    @property
    def state_file(self) -> Path:
        return self.host.workdir / "state" / "agent" / "agent.json"


@contextmanager
def scripted_agent(
    workdir: Path, compiled_dir: Path, control_plane: ScriptedControlPlane, **agent: object
) -> Iterator[AgentUnderTest]:
    """A real ``device-host serve`` in signed mode, enrolled with ``control_plane``, trusting
    a fresh fleet key; ``agent`` adds or overrides ``[agent]`` settings."""
    control_plane.start()
    keys = workdir / "trusted-keys"
    keys.mkdir()
    fleet_key = Ed25519PrivateKey.generate()
    (keys / "fleet.pub").write_text(encode_public_key(fleet_key.public_key()))
    host = HostProcess(workdir=workdir, compiled_dir=compiled_dir)
    host.settings = {
        "plugins": {"source": "signed"},
        "agent": {
            "control_plane_url": control_plane.url,
            "enrollment_token": "enroll-me",
            "device_name": "pi-scripted",
            "trusted_keys_dir": str(keys),
            "heartbeat_interval_s": 1.0,
            **agent,
        },
    }
    try:
        host.start(wait_for="ok")
        under_test = AgentUnderTest(control_plane, host, fleet_key)
        wait_until(lambda: under_test.status()["enrolled"], 20, "enrollment")
        yield under_test
    finally:
        host.stop()
        control_plane.stop()


@pytest.fixture(scope="package")
def agent(tmp_path_factory: pytest.TempPathFactory, compiled_dir: Path) -> Iterator[AgentUnderTest]:
    """The scripted agent most tests share.

    Its first enrollment answer carries a token that would inject a header; the second is good.
    """
    control_plane = ScriptedControlPlane()
    evil = {**GOOD_ENROLL, "device_token": "evil\r\nX-Injected: 1"}
    control_plane.enroll_answers = [json.dumps(evil).encode(), json.dumps(GOOD_ENROLL).encode()]
    workdir = tmp_path_factory.mktemp("agent-host")
    with scripted_agent(workdir, compiled_dir, control_plane) as under_test:
        yield under_test
