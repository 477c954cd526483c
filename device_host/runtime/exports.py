"""Typed calls to what each world exports, in the host's own types."""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmtime.component import Record

from device_host.contract import interfaces as iface
from device_host.errors import PluginTrap, TrapKind
from device_host.runtime.calls import split_result
from device_host.runtime.instance import ExportRef, PluginInstance

MAX_RESPONSE_BYTES = 4 << 20


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class DemoReading:
    """One ``sensor-reading`` a plugin of the original demo's sensor world returned."""

    sensor_id: str
    temperature: float
    humidity: float
    timestamp_ms: int


def handle_http(instance: PluginInstance, interface: str, request: HttpRequest) -> HttpResponse:
    record = Record()
    for name in ("method", "path", "query", "headers", "body"):
        setattr(record, name, getattr(request, name))
    reply = instance.call(ExportRef(interface, "handle"), record)
    # A text body lifts to str and a binary one to bytes: the two arms differ in Python type.
    body = reply.body.encode() if isinstance(reply.body, str) else bytes(reply.body)
    if len(body) > MAX_RESPONSE_BYTES:
        raise PluginTrap(
            instance.label, TrapKind.HOST_ERROR, f"response of {len(body)} bytes is too large"
        )
    if not 100 <= reply.status <= 599:
        raise PluginTrap(instance.label, TrapKind.HOST_ERROR, f"invalid HTTP status {reply.status}")
    return HttpResponse(reply.status, [(str(k), str(v)) for k, v in reply.headers], body)


def run_result_call(
    instance: PluginInstance, export: ExportRef, *args: object, budget_ms: int | None = None
) -> str | None:
    """Calls an export returning ``result<_, string>``; returns the error text or None."""
    value = instance.call(export, *args, budget_ms=budget_ms)
    is_ok, payload = split_result(instance.func_type(export).result, value)
    return None if is_ok else str(payload)


SELF_CHECK_BUDGET_MS = 2000
"""A self-check runs once per load, often while the device is busy booting or compiling."""


def self_check(instance: PluginInstance, interface: str, call_timeout_ms: int) -> str | None:
    budget = max(call_timeout_ms, SELF_CHECK_BUDGET_MS)
    return run_result_call(instance, ExportRef(interface, "check"), budget_ms=budget)


def tick(instance: PluginInstance, interface: str, now_ms: int) -> str | None:
    return run_result_call(instance, ExportRef(interface, "tick"), now_ms)


def demo_render(
    instance: PluginInstance, interface: str, temperature: float, humidity: float
) -> str:
    html = instance.call(ExportRef(interface, "render"), temperature, humidity)
    return str(html)


def demo_poll(instance: PluginInstance, interface: str) -> list[DemoReading]:
    readings = instance.call(ExportRef(interface, "poll"))
    return [
        DemoReading(
            sensor_id=getattr(r, "sensor-id"),
            temperature=r.temperature,
            humidity=r.humidity,
            timestamp_ms=getattr(r, "timestamp-ms"),
        )
        for r in readings
    ]


EXPORT_OF_WORLD = {
    "dashboard": iface.HTTP_HANDLER,
    "automation": iface.CONTROL_LOOP,
    "demo:sensor-plugin": iface.DEMO_SENSOR_LOGIC,
    "demo:dashboard-plugin": iface.DEMO_DASHBOARD_LOGIC,
}
