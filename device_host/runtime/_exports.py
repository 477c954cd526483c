"""Typed calls to what each world exports, in the host's own types, with bounded outputs."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from wasmtime.component import Record, Variant

from device_host.errors import PluginTrap, TrapKind
from device_host.runtime._calls import split_result
from device_host.runtime._instance import ExportRef, PluginInstance

MAX_RESPONSE_BYTES = 4 << 20
"""A page's body, decoded."""
MAX_PAGE_OUTPUT_BYTES = MAX_RESPONSE_BYTES * 4 // 3 + (64 << 10)
"""A response as it leaves the guest: the body base64-encoded at worst, plus headers."""
MAX_ERROR_OUTPUT_BYTES = 4 << 10
"""What a tick or self-check may say about its failure."""
MAX_POLL_READINGS = 32
MAX_POLL_OUTPUT_BYTES = 16 << 10
SELF_CHECK_BUDGET_MS = 2000
"""A self-check runs once per load, often while the device is busy booting or compiling."""


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
    for name in ("method", "path", "query", "headers"):
        setattr(record, name, getattr(request, name))
    setattr(record, "body", _body_variant(request.body))  # noqa: B010 (Record is untyped)
    reply = instance.call(
        ExportRef(interface, "handle"), record, max_output_bytes=MAX_PAGE_OUTPUT_BYTES
    )
    body = _body_bytes(instance.label, reply.body)
    if len(body) > MAX_RESPONSE_BYTES:
        raise PluginTrap(
            instance.label,
            TrapKind.BAD_OUTPUT,
            f"response body of {len(body)} bytes is over the {MAX_RESPONSE_BYTES} limit",
        )
    return HttpResponse(reply.status, [(str(k), str(v)) for k, v in reply.headers], body)


def demo_render(
    instance: PluginInstance, interface: str, temperature: float, humidity: float
) -> HttpResponse:
    html = instance.call(
        ExportRef(interface, "render"),
        temperature,
        humidity,
        max_output_bytes=MAX_RESPONSE_BYTES,
    )
    return HttpResponse(200, [("content-type", "text/html; charset=utf-8")], str(html).encode())


def demo_poll(instance: PluginInstance, interface: str) -> list[DemoReading]:
    readings = instance.call(ExportRef(interface, "poll"), max_output_bytes=MAX_POLL_OUTPUT_BYTES)
    if len(readings) > MAX_POLL_READINGS:
        raise PluginTrap(
            instance.label,
            TrapKind.BAD_OUTPUT,
            f"poll returned {len(readings)} readings; at most {MAX_POLL_READINGS} are taken",
        )
    return [
        DemoReading(
            sensor_id=getattr(r, "sensor-id"),
            temperature=r.temperature,
            humidity=r.humidity,
            timestamp_ms=getattr(r, "timestamp-ms"),
        )
        for r in readings
    ]


def tick(instance: PluginInstance, interface: str, now_ms: int) -> str | None:
    return _result_call(instance, ExportRef(interface, "tick"), now_ms)


def self_check(instance: PluginInstance, interface: str, call_timeout_ms: int) -> str | None:
    budget = max(call_timeout_ms, SELF_CHECK_BUDGET_MS)
    return _result_call(instance, ExportRef(interface, "check"), budget_ms=budget)


def _result_call(
    instance: PluginInstance, export: ExportRef, *args: object, budget_ms: int | None = None
) -> str | None:
    """Calls an export returning ``result<_, string>``; returns the error text or None."""
    value = instance.call(
        export, *args, budget_ms=budget_ms, max_output_bytes=MAX_ERROR_OUTPUT_BYTES
    )
    is_ok, payload = split_result(instance.result_type(export), value)
    return None if is_ok else str(payload)


def _body_variant(body: bytes) -> Variant:
    """Text when the body is UTF-8, else base64: either way one string crosses into the guest."""
    try:
        return Variant("text", body.decode("utf-8"))
    except UnicodeDecodeError:
        return Variant("base64", base64.b64encode(body).decode("ascii"))


def _body_bytes(label: str, body: Variant) -> bytes:
    if body.tag == "text":
        return str(body.payload).encode("utf-8", errors="surrogatepass")
    try:
        return base64.b64decode(str(body.payload), validate=True)
    except (binascii.Error, ValueError):
        raise PluginTrap(label, TrapKind.BAD_OUTPUT, "response body is not valid base64") from None
