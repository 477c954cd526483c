"""The devices' API: enrollment and heartbeats (see `control_plane.api_support`)."""

from __future__ import annotations

import json
import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from control_plane.api_support import (
    BadRequest,
    BodyTooLarge,
    allow,
    bearer_token,
    content_length,
    error,
    interval,
    json_body,
)
from control_plane.devices.exceptions import (
    EnrollmentRefused,
    TelemetryRefused,
    UnknownDeviceToken,
)
from control_plane.devices.services import (
    admit_heartbeat,
    enroll_device_with_channel,
    record_heartbeat,
)
from control_plane.devices.telemetry import check_reading_count
from control_plane.errors import error_messages
from control_plane.signing import CertificateRequestRefused, DeviceCAError, SigningKeyError
from fleet_common.wire.heartbeat import parse_enrollment, parse_heartbeat
from fleet_common.wire.reports import ReportError

log = logging.getLogger(__name__)


@csrf_exempt
@allow("POST")
def enroll(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/enroll``: trade an enrollment token for a device id and token.

    With a ``channel_csr`` the answer also carries the device's MQTT channel grant.
    """
    try:
        enrollment = parse_enrollment(json_body(request))
        device, token, channel = enroll_device_with_channel(enrollment=enrollment)
    except BodyTooLarge as exc:
        return error(413, str(exc))
    except (BadRequest, ReportError) as exc:
        return error(400, str(exc))
    except EnrollmentRefused as exc:
        return error(403, str(exc))
    except CertificateRequestRefused as exc:
        return error(400, f"channel_csr: {exc}")
    except ValidationError as exc:
        return error(400, "; ".join(error_messages(exc)))
    except SigningKeyError as exc:
        log.error("cannot enroll devices: %s", exc)
        return error(503, "the control plane has no signing key yet; try again later")
    except DeviceCAError as exc:
        log.error("cannot grant device channels: %s", exc)
        return error(503, "the control plane has no device CA yet; enroll without channel_csr")
    log.info("enrolled device %s (%s)", device.name, device.pk)
    answer: dict[str, object] = {
        "device_id": str(device.pk),
        "device_token": token,
        "heartbeat_interval_s": interval(),
    }
    if channel is not None:
        answer["channel"] = channel
    return JsonResponse(answer, status=201)


@csrf_exempt
@allow("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/heartbeat``: store a device's report, answer with what it lacks.

    Limits come before the work they guard: the token and the hourly byte budget are
    checked on the declared length before the body is read, the readings are counted
    before any is parsed, and a body over the cap is refused unread.
    """
    token = bearer_token(request)
    if token is None:
        return error(401, "missing Authorization: Bearer <device token>")
    try:
        device = admit_heartbeat(device_token=token, body_bytes=content_length(request))
        data = json_body(request)
        if isinstance(data, dict) and isinstance(data.get("readings"), list):
            check_reading_count(len(data["readings"]))
        outcome = record_heartbeat(
            device_token=token,
            heartbeat=parse_heartbeat(data),
            body_bytes=len(request.body),
            device=device,
        )
    except UnknownDeviceToken as exc:
        return error(401, str(exc))
    except TelemetryRefused as exc:
        response = error(429, str(exc))
        response["Retry-After"] = str(exc.retry_after_s)
        return response
    except BodyTooLarge as exc:
        return error(413, str(exc))
    except (BadRequest, ReportError) as exc:
        return error(400, str(exc))
    # An unchanged answer is the interval alone (a few dozen bytes); the envelope is stored
    # as the JSON text it was signed into, so it is spliced in as is.
    parts = [f'"heartbeat_interval_s":{interval()}']
    if outcome.desired_envelope is not None:
        parts.insert(0, f'"desired":{outcome.desired_envelope}')
    if outcome.rejected_readings is not None:
        rejected = json.dumps(outcome.rejected_readings.to_json(), separators=(",", ":"))
        parts.append(f'"rejected_readings":{rejected}')
    return HttpResponse("{" + ",".join(parts) + "}", content_type="application/json")
