"""The device dashboard: the live DHT22 reading, why it is missing, and a history chart."""

import json
from html import escape

from componentize_py_types import Err
from page import render_page
from wit_world import exports
from wit_world.exports.http_handler import Body_Text, Request, Response
from wit_world.imports import dht22

TITLE = "WASI Python Dashboard"
SENSOR_PIN = 4


def sensor_state() -> dict:
    """The fresh reading, or the sensor's error and the last good reading, with its age."""
    try:
        reading, error = dht22.read(SENSOR_PIN), None
    except Err as err:
        error = err.value.name.lower().replace("_", "-")
        try:
            reading = dht22.last_good(SENSOR_PIN)
        except Err:
            return {"error": error}
    return {
        "temperature_c": round(reading.temperature_c, 1),
        "humidity_pct": round(reading.humidity_pct, 1),
        "taken_at_ms": reading.taken_at_ms,
        "age_s": round(reading.age_ms / 1000),
        "error": error,
    }


def reply(status: int, content_type: str, body: str) -> Response:
    headers = [("content-type", content_type), ("cache-control", "no-store")]
    return Response(status, headers, Body_Text(body))


class HttpHandler(exports.HttpHandler):
    def handle(self, request: Request) -> Response:
        if request.method != "GET" or request.path not in ("/", "/reading.json"):
            return reply(404, "text/plain; charset=utf-8", f"No page at {request.path}\n")
        state = sensor_state()
        if request.path == "/":
            return reply(200, "text/html; charset=utf-8", render_page(TITLE, state, SENSOR_PIN))
        return reply(503 if state["error"] else 200, "application/json", json.dumps(state))


class SelfCheck(exports.SelfCheck):
    def check(self) -> None:
        if f"<h1>{escape(TITLE)}</h1>" not in render_page(TITLE, sensor_state(), SENSOR_PIN):
            raise Err("the rendered page lacks its <h1> title")
