"""Device-facing JSON views: thin wrappers that parse, call one service, and answer.

Devices authenticate with ``Authorization: Bearer <device token>``; no session, no CSRF.
Every refusal is ``{"error": "..."}`` with a message that names the problem.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact
from control_plane.builds.storage import compiled_path
from control_plane.devices.exceptions import EnrollmentRefused, UnknownDeviceToken
from control_plane.devices.models import Device
from control_plane.devices.services import enroll_device, record_heartbeat
from control_plane.devices.tokens import hash_token
from control_plane.errors import error_messages
from control_plane.plugins.artifacts import artifact_path
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from control_plane.plugins.signing import SigningKeyError
from fleet_common.wire.heartbeat import parse_enrollment, parse_heartbeat
from fleet_common.wire.reports import ReportError

log = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="pi-fleet"'
    return response


class BadRequest(Exception):
    """The request cannot be understood; the message says why."""


def _json_body(request: HttpRequest) -> Any:
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


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _interval() -> float | int:
    interval = settings.HEARTBEAT_INTERVAL_S
    return int(interval) if float(interval).is_integer() else interval


def allow(method: str) -> Callable[[View], View]:
    """Answers other methods with a JSON 405, like every other refusal here."""

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != method:
                response = error(405, f"use {method} for {request.path}")
                response["Allow"] = method
                return response
            return view(request, *args, **kwargs)

        return checked

    return decorate


@csrf_exempt
@allow("POST")
def enroll(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/enroll``: trade an enrollment token for a device id and token."""
    try:
        enrollment = parse_enrollment(_json_body(request))
        device, token = enroll_device(
            enrollment_token=enrollment.enrollment_token,
            name=enrollment.name,
            host_version=enrollment.host_version,
            agent_url=enrollment.agent_url,
            engine=enrollment.engine,
        )
    except (BadRequest, ReportError) as exc:
        return error(400, str(exc))
    except EnrollmentRefused as exc:
        return error(403, str(exc))
    except ValidationError as exc:
        return error(400, "; ".join(error_messages(exc)))
    except SigningKeyError as exc:
        log.error("cannot enroll devices: %s", exc)
        return error(503, "the control plane has no signing key yet; try again later")
    log.info("enrolled device %s (%s)", device.name, device.pk)
    return JsonResponse(
        {
            "device_id": str(device.pk),
            "device_token": token,
            "heartbeat_interval_s": _interval(),
        },
        status=201,
    )


@csrf_exempt
@allow("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/heartbeat``: store a device's report, answer with its desired state."""
    token = _bearer_token(request)
    if token is None:
        return error(401, "missing Authorization: Bearer <device token>")
    try:
        report = parse_heartbeat(_json_body(request))
        desired = record_heartbeat(device_token=token, heartbeat=report)
    except (BadRequest, ReportError) as exc:
        return error(400, str(exc))
    except UnknownDeviceToken as exc:
        return error(401, str(exc))
    # The envelope is stored as the JSON text it was signed into; splice it in as is.
    body = f'{{"desired":{desired or "null"},"heartbeat_interval_s":{_interval()}}}'
    return HttpResponse(body, content_type="application/json")


@allow("GET")
def artifact(request: HttpRequest, sha256: str) -> HttpResponse:
    """``GET /api/v1/artifacts/<sha256>``: the approved component, zstd-compressed."""
    if (refused := _unenrolled(request)) is not None:
        return refused
    size = (
        PluginVersion.objects.filter(sha256=sha256, status=VersionStatus.APPROVED)
        .values_list("size", flat=True)
        .first()
    )
    return _stream(size, artifact_path(sha256), f"approved artifact {sha256}")


@allow("GET")
def compiled(request: HttpRequest, sha256: str) -> HttpResponse:
    """``GET /api/v1/compiled/<sha256>``: a signed compiled artifact, zstd-compressed."""
    if (refused := _unenrolled(request)) is not None:
        return refused
    size = (
        CompiledArtifact.objects.filter(
            sha256=sha256,
            state=ArtifactState.READY,
            envelope__isnull=False,
            version__status=VersionStatus.APPROVED,
        )
        .values_list("size", flat=True)
        .first()
    )
    return _stream(size, compiled_path(sha256), f"signed compiled artifact {sha256}")


def _unenrolled(request: HttpRequest) -> HttpResponse | None:
    """The 401 for a request without a known device token, before anything is looked up."""
    token = _bearer_token(request)
    if token is None:
        return error(401, "missing Authorization: Bearer <device token>")
    if not Device.objects.filter(token_hash=hash_token(token)).exists():
        return error(401, "unknown device token (was the device deleted? enroll it again)")
    return None


def _stream(size: int | None, path: Path, what: str) -> HttpResponse:
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
