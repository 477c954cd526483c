"""``GET /healthz``: for load balancers, monitoring and the provisioning playbooks."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from control_plane.signing import SigningKeyError, signing_key_id
from fleet_common import __version__


@require_GET
def healthz(_request: HttpRequest) -> JsonResponse:
    """200 when the database answers and the signing key loads; 503 naming what fails."""
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        problems.append(f"database: {exc}")
    try:
        key_id: str | None = signing_key_id()
    except SigningKeyError as exc:
        key_id = None
        problems.append(f"signing key: {exc}")
    return JsonResponse(
        {
            "status": "failing" if problems else "ok",
            "version": __version__,
            "signing_key_id": key_id,
            "problems": problems,
        },
        status=503 if problems else 200,
    )
