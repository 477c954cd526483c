"""``POST /api/v1/channel``: a device trades a CSR for its MQTT client certificate.

The body is bounded before it is parsed (a CSR is at most 4 KB); the certificate's CN is
the device id whatever the CSR asks for (`control_plane.signing.issue_device_certificate`).
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from control_plane.api_support import BadRequest, allow, bearer_token, error, json_body
from control_plane.devices.selectors import device_for_token
from control_plane.notices.services import grant_channel
from control_plane.signing import CertificateRequestRefused, DeviceCAError
from fleet_common.wire.channel import MAX_CSR_BYTES, parse_channel_request
from fleet_common.wire.reports import ReportError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = MAX_CSR_BYTES + 1024
"""A CSR and its JSON wrapping (PEM newlines escaped); anything larger is refused unread."""


@csrf_exempt
@allow("POST")
def channel(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/channel``: the device's client certificate, broker and topic."""
    token = bearer_token(request)
    if token is None:
        return error(401, "missing Authorization: Bearer <device token>")
    if _declared_length(request) > MAX_BODY_BYTES:
        return error(
            413,
            f"the body is larger than {MAX_BODY_BYTES} bytes (a CSR is at most {MAX_CSR_BYTES})",
        )
    device = device_for_token(token)
    if device is None:
        return error(401, "unknown device token (was the device deleted? enroll it again)")
    try:
        channel_request = parse_channel_request(json_body(request))
        grant = grant_channel(device, channel_request.csr)
    except (BadRequest, ReportError, CertificateRequestRefused) as exc:
        return error(400, str(exc))
    except DeviceCAError as exc:
        log.error("cannot grant device %s a channel: %s", device.pk, exc)
        return error(503, "the control plane has no device CA yet; try again later")
    if grant is None:
        return error(503, "the control plane has no broker: rely on heartbeats, ask again later")
    return JsonResponse(grant)


def _declared_length(request: HttpRequest) -> int:
    """The body's declared size; Django reads no more than it, so checking it bounds the read."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return MAX_BODY_BYTES + 1
