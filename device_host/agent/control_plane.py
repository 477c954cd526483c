"""The agent's side of the control plane API: enroll, heartbeat, channel, download artifacts."""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import ssl
import time
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
from fleet_common.wire.channel import (
    ChannelError,
    ChannelGrant,
    ChannelRequest,
    parse_channel_grant,
)
from fleet_common.wire.heartbeat import Enrollment
from fleet_common.wire.jsonlimits import JsonRefused, loads_bounded
from fleet_common.wire.reports import EngineReport

TIMEOUT_S = 15.0
MAX_ANSWER_BYTES = 4 << 20
"""A desired state with a hundred releases is ~300 KB; anything far larger is not an answer."""
MAX_RETRY_AFTER_S = 3600.0
"""A Retry-After longer than this is taken as this: a device is never told to go silent."""
T = TypeVar("T")


class ControlPlaneError(DeviceHostError):
    """The control plane could not be reached or refused a request."""

    def __init__(
        self, message: str, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s
        """From a 429's or 503's Retry-After, bounded; None: it did not say."""


class ControlPlaneClient:
    """Talks to the control plane over HTTPS pinned to the fleet CA (``context``), or over
    plain HTTP to a loopback address when ``context`` is None (the config checked which)."""

    def __init__(
        self, base_url: str, token: str | None = None, context: ssl.SSLContext | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._opener = urllib.request.build_opener(
            _RefuseRedirects(), urllib.request.HTTPSHandler(context=context)
        )

    def enroll(
        self,
        enrollment_token: str,
        name: str,
        host_version: str,
        engine: EngineReport,
        channel_csr: str | None = None,
    ) -> EnrollAnswer:
        body = Enrollment(
            enrollment_token=enrollment_token,
            name=name,
            host_version=host_version,
            engine=engine,
            channel_csr=channel_csr,
        ).to_json()
        return _parsed(parse_enroll_answer, self._post(paths.ENROLL, body, authenticated=False))

    def request_channel(self, csr: str) -> ChannelGrant:
        """A client certificate and topic for the notice channel; 503: no broker."""
        answer = self._post(paths.CHANNEL, ChannelRequest(csr).to_json(), authenticated=True)
        try:
            return parse_channel_grant(answer)
        except ChannelError as exc:
            raise ControlPlaneError(f"malformed channel grant: {exc}") from None

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

    @contextmanager
    def _open(self, request: urllib.request.Request) -> Iterator[Any]:
        try:
            with self._opener.open(request, timeout=TIMEOUT_S) as response:
                yield response
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode(errors="replace")
            raise ControlPlaneError(
                f"{request.full_url}: HTTP {exc.code}: {detail}",
                status=exc.code,
                retry_after_s=retry_after(exc.headers.get("Retry-After")),
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise ControlPlaneError(f"{request.full_url}: unreachable: {exc}") from None
        except ValueError as exc:
            raise ControlPlaneError(f"{request.full_url}: bad HTTP: {exc}") from None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is here: following one would carry the bearer
    token to wherever the answer points, perhaps over plain HTTP."""

    def redirect_request(self, *_: object, **__: object) -> None:
        return None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), at most an hour.

    None when absent or unreadable: the caller's own back-off applies.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text[:10])
    else:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _parsed(parse: Callable[[dict[str, Any]], T], answer: dict[str, Any]) -> T:
    try:
        return parse(answer)
    except AnswerError as exc:
        raise ControlPlaneError(f"malformed answer: {exc}") from None
