"""The devices' API: enrollment and heartbeats (see `control_plane.api_support`)."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from control_plane.api_support import BadRequest, allow, bearer_token, error, interval, json_body
from control_plane.devices.exceptions import EnrollmentRefused, UnknownDeviceToken
from control_plane.devices.services import enroll_device, record_heartbeat
from control_plane.errors import error_messages
from control_plane.signing import SigningKeyError
from fleet_common.wire.heartbeat import parse_enrollment, parse_heartbeat
from fleet_common.wire.reports import ReportError

log = logging.getLogger(__name__)


@csrf_exempt
@allow("POST")
def enroll(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/enroll``: trade an enrollment token for a device id and token."""
    try:
        enrollment = parse_enrollment(json_body(request))
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
            "heartbeat_interval_s": interval(),
        },
        status=201,
    )


@csrf_exempt
@allow("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/heartbeat``: store a device's report, answer with its desired state."""
    token = bearer_token(request)
    if token is None:
        return error(401, "missing Authorization: Bearer <device token>")
    try:
        report = parse_heartbeat(json_body(request))
        desired = record_heartbeat(device_token=token, heartbeat=report)
    except (BadRequest, ReportError) as exc:
        return error(400, str(exc))
    except UnknownDeviceToken as exc:
        return error(401, str(exc))
    # The envelope is stored as the JSON text it was signed into; splice it in as is.
    body = f'{{"desired":{desired or "null"},"heartbeat_interval_s":{interval()}}}'
    return HttpResponse(body, content_type="application/json")
