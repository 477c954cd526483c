"""The device's web security model, applied to every response on :3000.

Every page on the device shares one origin, so the host, not the plugin, decides what a page
may do: the host's headers are set last and cannot be overridden, a plugin may set only the
response headers on ``PLUGIN_HEADERS``, and a plugin page gets a Content-Security-Policy that
lets its scripts reach only its own mount path (plus what its world is granted). See
docs/web-security.md for the reasoning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from device_host.http.pages import error_page
from device_host.logs import OncePerWindow
from device_host.metrics import Metrics
from fleet_common.contract.worlds import World

log = logging.getLogger(__name__)

HOST_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""Set on every response the app sends, replacing anything a handler or plugin put there."""
HOST_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The host's own pages and JSON: nothing to load but their inline style."""
PLUGIN_HEADERS = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-language",
        "content-type",
        "etag",
        "expires",
        "last-modified",
        "retry-after",
        "vary",
    }
)
"""Describe the content and its caching; none of them moves the browser, grants another
origin, installs a worker, sets state or weakens a host header."""
MAX_PLUGIN_HEADERS = 32
MAX_HEADER_VALUE = 4096
PLUGIN_STATUSES = range(200, 600)
"""1xx would leave the client waiting for a final response (101 switches protocols)."""
READINGS_API = "/api/readings"
REQUEST_HEADERS_NOT_FORWARDED = frozenset(
    {
        "authorization",
        "connection",
        "forwarded",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Hop-by-hop headers, and the device credential, which is for the host and not for plugins."""
_HOST_RESERVED_PREFIX = "x-forwarded-"
"""Whatever a client sends as X-Forwarded-* is not what the host says about the request."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Page:
    """Where a plugin page is mounted and what its scripts may connect to besides its mount."""

    plugin: str
    mount: str
    """``/plugins/<name>``, or ``""`` for the dashboard at ``/``."""
    grants: tuple[str, ...] = ()

    @property
    def own_paths(self) -> tuple[str, ...]:
        """At the root a dashboard reaches its own routes through ``/plugins/<name>/``: a CSP
        path cannot say "/ except /healthz, /metrics, /api and the other plugins"."""
        return (f"/plugins/{self.plugin}/",)


def page_grants(mount: str, world: World | None) -> tuple[str, ...]:
    """What a plugin page may fetch besides its own mount.

    The dashboard at ``/`` shows the device's readings (``/api/readings``); a world may grant
    its pages more (a page written for the original demo fetches ``/api`` every 2 s, wherever
    it is mounted). Both APIs are public.
    """
    grants = (READINGS_API,) if mount == "" else ()
    return (*grants, *(world.page_apis if world is not None else ()))


_faults = OncePerWindow(log)
"""A plugin's header and status faults: one line per plugin and kind of fault a minute. The
header name a plugin chose is an example in the line, never part of the key."""


def _report(plugin: str, kind: str, detail: str) -> None:
    _faults.warning(f"{plugin}:{kind}", f"plugin {plugin}: {kind}: {detail}")


def plugin_csp(page: Page, host: str, scheme: str) -> str:
    """The CSP of one plugin page: its own mount for scripts, styles, images and fetches.

    Paths in a CSP need a host-source, built from the request's ``Host``; a Host that is not
    a plain host[:port] gets no source at all rather than one an attacker shaped.
    """
    if not (_HOST.fullmatch(host) and scheme in {"http", "https"}):
        own = connect = "'none'"
    else:
        own = " ".join(f"{scheme}://{host}{path}" for path in page.own_paths)
        connect = " ".join(f"{scheme}://{host}{path}" for path in (*page.own_paths, *page.grants))
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {own} 'unsafe-inline'",
            f"style-src {own} 'unsafe-inline'",
            f"img-src {own} data:",
            f"font-src {own}",
            f"connect-src {connect}",
            f"form-action {own}",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def plugin_response(
    request: web.BaseRequest,
    page: Page,
    reply: tuple[int, Iterable[tuple[str, str]], bytes],
    metrics: Metrics,
) -> web.Response:
    """Turns a plugin's (status, headers, body) into what the host sends, or a 502 page.

    A status outside 200-599 is the plugin's fault, counted in ``plugin_errors_total``;
    headers off the allow-list are dropped and counted in ``plugin_headers_dropped_total``.
    """
    status, headers, body = reply
    if not plugin_status_allowed(page.plugin, status):
        metrics.inc("plugin_errors_total", plugin=page.plugin, kind="bad-status")
        return error_page(
            502,
            f"Plugin {page.plugin} answered an invalid status",
            f"It answered {status}; a plugin may answer 200 to 599.",
        )
    kept, dropped = plugin_headers(page.plugin, headers)
    if dropped:
        metrics.inc("plugin_headers_dropped_total", float(dropped), plugin=page.plugin)
    response = web.Response(status=status, body=body)
    for name, value in kept:
        response.headers[name] = value
    response.headers["Content-Security-Policy"] = plugin_csp(page, request.host, request.scheme)
    return response


def plugin_headers(
    plugin: str, headers: Iterable[tuple[str, str]]
) -> tuple[list[tuple[str, str]], int]:
    """The plugin's response headers the host will send, and how many it dropped."""
    kept: list[tuple[str, str]] = []
    dropped = 0
    for name, value in headers:
        lower = name.lower()
        if not _TOKEN.fullmatch(name):
            _report(plugin, "dropped a response header with an invalid name", repr(name))
        elif lower not in PLUGIN_HEADERS:
            _report(plugin, "dropped a response header that is not allowed", repr(lower))
        elif _UNSAFE_VALUE.search(value) or len(value) > MAX_HEADER_VALUE:
            _report(plugin, "dropped a response header with an invalid value", repr(lower))
        elif len(kept) >= MAX_PLUGIN_HEADERS:
            _report(plugin, "dropped response headers", f"past {MAX_PLUGIN_HEADERS}")
        else:
            kept.append((name, value))
            continue
        dropped += 1
    return kept, dropped


def plugin_status_allowed(plugin: str, status: int) -> bool:
    """Whether a plugin's status can be sent; any other is the plugin's fault."""
    if status in PLUGIN_STATUSES:
        return True
    _report(plugin, "answered a status outside 200-599", str(status))
    return False


def forwarded_request_headers(
    headers: Iterable[tuple[str, str]], mount_header: str, mount: str
) -> list[tuple[str, str]]:
    """The client's headers a plugin sees, then the host's own ``mount_header``.

    Hop-by-hop headers, the device credential and any client-sent ``X-Forwarded-*`` are
    dropped, so the only X-Forwarded-Prefix a plugin sees is the one the host set.
    """
    passed = [
        (name.lower(), value)
        for name, value in headers
        if name.lower() not in REQUEST_HEADERS_NOT_FORWARDED
        and not name.lower().startswith(_HOST_RESERVED_PREFIX)
    ]
    return [*passed, (mount_header, mount)]


async def on_response_prepare(_request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp's ``on_response_prepare`` signal, so it covers handlers, error pages and HTTP
    exceptions: sets the host's headers last; a response with no CSP gets the host page's."""
    for name, value in HOST_HEADERS.items():
        response.headers[name] = value
    response.headers.setdefault("Content-Security-Policy", HOST_PAGE_CSP)
