"""A dashboard plugin that misbehaves on request, to test the host's limits and grants."""

import base64
import sys
import time
from urllib.parse import unquote

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.http_handler import Body_Base64, Body_Text, Request, Response
from wit_world.imports import dht22, gpio, kv, log


def reply(text, status=200):
    return Response(status, [("content-type", "text/plain")], Body_Text(text))


def snoop():
    """What the sandbox lets a plugin see of the device: it should be nothing."""
    import os

    found = [f"env={len(os.environ)}", f"argv={len(sys.argv)}"]
    for label, attempt in (
        ("read", lambda: open("/etc/passwd").read()),
        ("list", lambda: os.listdir("/")),
        ("write", lambda: open("/tmp/pwned", "w").write("x")),
    ):
        try:
            attempt()
            found.append(f"{label}=allowed")
        except OSError as error:
            found.append(f"{label}={type(error).__name__}")
    try:
        import socket  # noqa: F401

        found.append("socket=importable")
    except ImportError:
        found.append("socket=missing")
    return reply(" ".join(found))


def misbehave(action):
    if action == "sleep":
        time.sleep(30)
    elif action == "loop":
        while True:
            pass
    elif action == "recurse":

        def down(n):
            return down(n + 1)

        down(0)
    elif action == "alloc":
        hoard = []
        while True:
            hoard.append(bytearray(8 << 20))
    elif action == "raise":
        raise ValueError("lab asked to raise")
    elif action == "exit":
        sys.exit(3)
    elif action == "snoop":
        return snoop()
    elif action == "print":
        print("lab says hello on stdout")
        print("lab says hello on stderr", file=sys.stderr)


class HttpHandler(exports.HttpHandler):
    def handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        try:
            if parts[0] == "binary":
                blob = bytes(range(256))
                return Response(
                    200,
                    [("content-type", "application/octet-stream")],
                    Body_Base64(base64.b64encode(blob).decode()),
                )
            if parts[0] == "big":
                return reply("x" * int(parts[1]))
            if parts[0] == "say":
                log.write(log.Level.WARNING, unquote(request.query))
                return reply("said")
            if parts[0] == "spin":
                until = time.monotonic() + int(parts[1]) / 1000
                while time.monotonic() < until:
                    pass
                return reply("spun")
            if parts[0] == "sensor":
                r = dht22.read(int(parts[1]))
                return reply(f"{r.temperature_c:.1f} {r.humidity_pct:.1f} {r.age_ms}")
            if parts[0] == "gpio":
                gpio.set_output(int(parts[1]), parts[2] == "on")
                return reply("on" if gpio.get_output(int(parts[1])) else "off")
            if parts[0] == "kv" and parts[1] == "put":
                kv.set(parts[2], "x" * int(parts[3]))
                return reply("stored")
            if parts[0] == "kv" and parts[1] == "get":
                value = kv.get(parts[2])
                return reply("missing" if value is None else str(len(value)))
        except Err as error:
            return reply(f"error {error.value.name.lower().replace('_', '-')}", 409)
        snooped = misbehave(parts[0])
        if snooped is not None:
            return snooped
        log.write(log.Level.INFO, f"lab served {request.path}")
        return reply(
            f"lab {request.method} {request.path} {request.query} {len(request.body.value)}"
        )
