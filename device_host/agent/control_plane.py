"""The agent's side of the control plane API: enroll, heartbeat, download artifacts."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

from device_host.errors import DeviceHostError
from fleet_common.wire import paths
from fleet_common.wire.answers import (
    AnswerError,
    EnrollAnswer,
    HeartbeatAnswer,
    parse_enroll_answer,
    parse_heartbeat_answer,
)
from fleet_common.wire.heartbeat import Enrollment
from fleet_common.wire.jsonlimits import JsonRefused, loads_bounded
from fleet_common.wire.reports import EngineReport

TIMEOUT_S = 15.0
MAX_ANSWER_BYTES = 4 << 20
"""A desired state with a hundred releases is ~300 KB; anything far larger is not an answer."""
T = TypeVar("T")


class ControlPlaneError(DeviceHostError):
    """The control plane could not be reached or refused a request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ControlPlaneClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def enroll(
        self,
        enrollment_token: str,
        name: str,
        host_version: str,
        agent_url: str,
        engine: EngineReport,
    ) -> EnrollAnswer:
        body = Enrollment(
            enrollment_token=enrollment_token,
            name=name,
            host_version=host_version,
            agent_url=agent_url,
            engine=engine,
        ).to_json()
        return _parsed(parse_enroll_answer, self._post(paths.ENROLL, body, authenticated=False))

    def heartbeat(self, report: dict[str, object]) -> HeartbeatAnswer:
        """Sends a report, `Heartbeat.to_json()`'s form; answers with what to run."""
        answer = self._post(paths.HEARTBEAT, report, authenticated=True)
        return _parsed(parse_heartbeat_answer, answer)

    @contextmanager
    def artifact(self, sha256: str) -> Iterator[IO[bytes]]:
        """Opens the zstd-compressed component as a stream; the caller bounds what it reads."""
        with self._download(paths.COMPONENT.format(sha256=sha256)) as response:
            yield response

    @contextmanager
    def compiled(self, sha256: str) -> Iterator[IO[bytes]]:
        """Opens a zstd-compressed compiled artifact as a stream, bounded by the caller."""
        with self._download(paths.COMPILED.format(sha256=sha256)) as response:
            yield response

    @contextmanager
    def _download(self, path: str) -> Iterator[IO[bytes]]:
        request = urllib.request.Request(self.base_url + path, headers=self._auth_headers())
        with self._open(request) as response:
            yield response

    def _post(self, path: str, body: dict[str, object], *, authenticated: bool) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if authenticated:
            headers.update(self._auth_headers())
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with self._open(request) as response:
            try:
                answer = loads_bounded(
                    response.read(MAX_ANSWER_BYTES + 1), max_bytes=MAX_ANSWER_BYTES
                )
            except JsonRefused as exc:
                raise ControlPlaneError(f"{path}: refused the answer: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                raise ControlPlaneError(f"{path}: the answer broke off: {exc}") from None
        if not isinstance(answer, dict):
            raise ControlPlaneError(f"{path}: the answer is not a JSON object")
        return answer

    def _auth_headers(self) -> dict[str, str]:
        if self.token is None:
            raise ControlPlaneError("this device is not enrolled")
        return {"Authorization": f"Bearer {self.token}"}

    @staticmethod
    @contextmanager
    def _open(request: urllib.request.Request) -> Iterator[Any]:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                yield response
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode(errors="replace")
            raise ControlPlaneError(
                f"{request.full_url}: HTTP {exc.code}: {detail}", status=exc.code
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise ControlPlaneError(f"{request.full_url}: unreachable: {exc}") from None
        except ValueError as exc:
            raise ControlPlaneError(f"{request.full_url}: bad HTTP: {exc}") from None


def _parsed(parse: Callable[[dict[str, Any]], T], answer: dict[str, Any]) -> T:
    try:
        return parse(answer)
    except AnswerError as exc:
        raise ControlPlaneError(f"malformed answer: {exc}") from None
