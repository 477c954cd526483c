"""What every device-facing JSON view shares: refusals, bodies, tokens, methods, downloads.

Devices authenticate with ``Authorization: Bearer <device token>``; no session, no CSRF.
Every refusal is ``{"error": "..."}`` with a message that names the problem. Each app
serves its own part of the API from its ``api/`` package with these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from control_plane.devices.models import Device
from control_plane.devices.tokens import hash_token

log = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]


def error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="pi-fleet"'
    return response


class BadRequest(Exception):
    """The request cannot be understood; the message says why."""


def json_body(request: HttpRequest) -> Any:
    try:
        body = request.body
    except RequestDataTooBig:
        raise BadRequest("the request body is too large") from None
    try:
        return json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def bearer_token(request: HttpRequest) -> str | None:
    header: str = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def interval() -> float | int:
    interval = settings.HEARTBEAT_INTERVAL_S
    return int(interval) if float(interval).is_integer() else interval


def allow(method: str) -> Callable[[View], View]:
    """Answers other methods with a JSON 405, like every other refusal here."""

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method != method:
                response = error(405, f"use {method} for {request.path}")
                response["Allow"] = method
                return response
            return view(request, *args, **kwargs)

        return checked

    return decorate


def unenrolled(request: HttpRequest) -> HttpResponse | None:
    """The 401 for a request without a known device token, before anything is looked up."""
    token = bearer_token(request)
    if token is None:
        return error(401, "missing Authorization: Bearer <device token>")
    if not Device.objects.filter(token_hash=hash_token(token)).exists():
        return error(401, "unknown device token (was the device deleted? enroll it again)")
    return None


def stream(size: int | None, path: Path, what: str) -> HttpResponseBase:
    """A stored zstd file with its raw size in ``X-Artifact-Size``; None: no such file."""
    if size is None:
        return error(404, f"no {what}")
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        log.error("%s is in the database but missing from %s", what, path.parent)
        return error(404, f"{what} is missing on the control plane")
    response = FileResponse(handle, content_type="application/zstd")
    response["X-Artifact-Size"] = str(size)
    return response
