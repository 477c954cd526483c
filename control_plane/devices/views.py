"""The fleet pages, for signed-in people: the overview, one version's devices, one device."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.http import urlencode

from control_plane.devices.charts import reading_chart
from control_plane.devices.models import Device, Tag
from control_plane.devices.rows import device_rows, plugin_lines
from control_plane.devices.selectors import (
    STATES,
    FleetQuery,
    changed_since,
    fleet_counts,
    fleet_page,
    install_history,
    log_tail,
    plugin_health,
    recent_events,
    recent_readings,
    version_devices,
)

REFRESH_S = 5
SORT_LABELS = {
    "name": "name, A to Z",
    "-name": "name, Z to A",
    "-last_seen": "last seen, newest first",
    "last_seen": "last seen, oldest first",
}


def _query(request: HttpRequest) -> FleetQuery:
    return FleetQuery.parse({key: request.GET.get(key, "") for key in request.GET})


def _bad(problem: ValidationError) -> HttpResponseBadRequest:
    return HttpResponseBadRequest("; ".join(problem.messages), content_type="text/plain")


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    """``/fleet/``: fleet counts, then one page of devices with what each should and does run."""
    try:
        query = _query(request)
    except ValidationError as problem:
        return _bad(problem)
    now = timezone.now()
    page = fleet_page(query, now)
    filters = query.filters()
    counts = fleet_counts(now)
    return render(
        request,
        "devices/fleet.html",
        {
            "rows": device_rows(page.object_list, now),
            "page": page,
            "counts": counts,
            "state_counts": [(state, counts[state]) for state in STATES],
            "query": query,
            "tags": Tag.objects.values_list("name", flat=True),
            "states": STATES,
            "sorts": SORT_LABELS,
            "keep": urlencode(filters),
            "keep_sort": urlencode({**filters, "sort": query.sort}),
            "refresh_ms": REFRESH_S * 1000,
            "generated_at": now.isoformat(),
        },
    )


@login_required
def fleet_json(request: HttpRequest) -> HttpResponse:
    """``/fleet/devices.json``: the overview's page as data; with ``since``, only the page's
    devices that changed since then (each with its row's HTML for the refresh script)."""
    try:
        query = _query(request)
    except ValidationError as problem:
        return _bad(problem)
    now = timezone.now()
    page = fleet_page(query, now)
    devices = list(page.object_list)
    changed = devices if query.since is None else changed_since(devices, query.since, now)
    rows = device_rows(changed, now)
    return JsonResponse(
        {
            "generated_at": now.isoformat(),
            "heartbeat_interval_s": settings.HEARTBEAT_INTERVAL_S,
            "counts": fleet_counts(now),
            "page": page.number,
            "pages": page.paginator.num_pages,
            "matching": page.paginator.count,
            "ids": [str(d.pk) for d in devices],
            "devices": [
                {**row.to_json(), "html": render_to_string("devices/_row.html", {"row": row})}
                for row in rows
            ],
        }
    )


@login_required
def version_page(request: HttpRequest, plugin: str, version: str) -> HttpResponse:
    """``/fleet/versions/<plugin>/<version>/``: who runs it, who should, who failed it."""
    raw_page = request.GET.get("page", "1")
    number = int(raw_page) if raw_page.isascii() and raw_page.isdigit() else 1
    now = timezone.now()
    sections: list[dict[str, Any]] = []
    for kind, title in (
        ("running", f"Running {plugin} {version}"),
        ("desired", f"Should run {plugin} {version}"),
        ("failed", f"Refused, reverted or quarantined {plugin} {version}"),
    ):
        page = version_devices(plugin, version, kind, number)
        sections.append(
            {"kind": kind, "title": title, "page": page, "rows": device_rows(page.object_list, now)}
        )
    return render(
        request,
        "devices/version.html",
        {
            "plugin": plugin,
            "version": version,
            "sections": sections,
            "number": number,
            "more": any(section["page"].has_next() for section in sections),
        },
    )


def vitals_lines(vitals: Any) -> list[tuple[str, str]]:
    """The device's own figures in words; a figure it did not report is left out."""
    if not isinstance(vitals, dict):
        return []
    lines: list[tuple[str, str]] = []
    for key, label in (("ip", "IP"), ("os", "OS"), ("kernel", "kernel")):
        if vitals.get(key):
            lines.append((label, str(vitals[key])))
    if isinstance(vitals.get("uptime_s"), int | float):
        lines.append(("uptime", _duration(float(vitals["uptime_s"]))))
    if isinstance(vitals.get("cpu_temp_c"), int | float):
        lines.append(("CPU temperature", f"{vitals['cpu_temp_c']:.1f} °C"))
    for label, free, total in (
        ("memory", "mem_available_bytes", "mem_total_bytes"),
        ("disk", "disk_free_bytes", "disk_total_bytes"),
    ):
        if isinstance(vitals.get(free), int) and isinstance(vitals.get(total), int):
            lines.append(
                (label, f"{filesizeformat(vitals[free])} free of {filesizeformat(vitals[total])}")
            )
    return lines


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"


@login_required
def device_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """``/fleet/devices/<id>/``: history, plugins desired against running, their health and
    logs, vitals, install history, and the rollouts the device is in."""
    device = get_object_or_404(Device.objects.prefetch_related("tags"), pk=pk)
    now = timezone.now()
    readings = recent_readings(device)
    return render(
        request,
        "devices/device_detail.html",
        {
            "device": device,
            "connectivity": device.connectivity(now),
            "last_known": device.connectivity(now) != "online",
            "charts": [
                reading_chart("Temperature", "°C", readings, "temperature_c"),
                reading_chart("Humidity", "%", readings, "humidity_pct"),
            ],
            "plugins": plugin_lines(device, now),
            "health": plugin_health(device),
            "vitals": vitals_lines(device.vitals),
            "history": install_history(device),
            "events": recent_events(device),
            "log_lines": log_tail(device),
            "memberships": device.rollout_members.select_related(
                "rollout__version__plugin"
            ).order_by("-rollout__created_at", "-rollout__pk")[:20],
            "reading_count": len(readings),
            "last_reading_at": (
                datetime.fromisoformat(device.last_reading["taken_at"])
                if device.last_reading
                else None
            ),
        },
    )
