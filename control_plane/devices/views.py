"""The fleet status pages, for signed-in people: every device, and one device in detail."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from control_plane.devices.charts import reading_chart
from control_plane.devices.choices import Connectivity
from control_plane.devices.models import Device, Tag
from control_plane.devices.selectors import (
    device_summary,
    fleet_devices,
    plugin_rows,
    recent_events,
    recent_readings,
)

REFRESH_S = 5


def _filters(request: HttpRequest) -> tuple[str | None, str | None]:
    tag = request.GET.get("tag") or None
    state = request.GET.get("state") or None
    return tag, state if state in Connectivity.values else None


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    """``/fleet/``: every device, online or not, what it runs, and its last reading."""
    tag, state = _filters(request)
    now = timezone.now()
    devices = [device_summary(device, now) for device in fleet_devices(tag=tag, state=state)]
    return render(
        request,
        "devices/fleet.html",
        {
            "devices": devices,
            "tags": Tag.objects.all(),
            "states": Connectivity.choices,
            "selected_tag": tag or "",
            "selected_state": state or "",
            "online_count": sum(d["connectivity"] == Connectivity.ONLINE for d in devices),
            "refresh_ms": REFRESH_S * 1000,
        },
    )


@login_required
def fleet_json(request: HttpRequest) -> JsonResponse:
    """``/fleet/devices.json``: what the fleet page shows, for its refresh script."""
    tag, state = _filters(request)
    now = timezone.now()
    return JsonResponse(
        {
            "generated_at": now.isoformat(),
            "heartbeat_interval_s": settings.HEARTBEAT_INTERVAL_S,
            "devices": [device_summary(d, now) for d in fleet_devices(tag=tag, state=state)],
        }
    )


@login_required
def device_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """``/fleet/devices/<id>/``: history charts, plugins, recent events, the device's link."""
    device = get_object_or_404(Device.objects.prefetch_related("tags"), pk=pk)
    readings = recent_readings(device)
    return render(
        request,
        "devices/device_detail.html",
        {
            "device": device,
            "connectivity": device.connectivity(),
            "charts": [
                reading_chart("Temperature", "°C", readings, "temperature_c"),
                reading_chart("Humidity", "%", readings, "humidity_pct"),
            ],
            "plugins": plugin_rows(device),
            "events": recent_events(device),
            "reading_count": len(readings),
            "last_reading_at": (
                datetime.fromisoformat(device.last_reading["taken_at"])
                if device.last_reading
                else None
            ),
        },
    )
