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
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
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


class BodyTooLarge(BadRequest):
    """The declared body is over ``DATA_UPLOAD_MAX_MEMORY_SIZE``; it was not read (HTTP 413)."""


def content_length(request: HttpRequest) -> int:
    """The body's declared size, checked against the cap before a byte of it is read."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        size = int(declared)
    except ValueError:
        raise BadRequest(f"Content-Length {declared!r} is not a number of bytes") from None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if size < 0:
        raise BadRequest(f"Content-Length {size} is negative")
    if limit is not None and size > limit:
        raise BodyTooLarge(f"the request body has {size} bytes; the limit is {limit}")
    return size


def json_body(request: HttpRequest) -> Any:
    try:
        body = request.body
    except RequestDataTooBig:
        raise BodyTooLarge("the request body is too large") from None
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
