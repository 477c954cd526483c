"""Who may see what on :3000: loopback and holders of the device's access token are trusted.

The LAN is not trusted. Plugin pages, ``/api`` and ``/api/readings`` are public (the dashboard
reads them). ``/healthz`` detail (plugins, versions, errors, the agent's state) and
``/metrics`` need a trusted request. Nothing on :3000 takes orders from the control plane:
the agent fetches its desired state itself.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from device_host.errors import ConfigError
from fleet_common.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
BEARER = "bearer "
TRUSTED_ONLY = frozenset({"/metrics"})
"""Paths that answer 403 to untrusted peers; ``/healthz`` answers them a minimal status instead."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(peer: str | None) -> bool:
    """Whether ``peer`` (``request.remote``) is this machine, IPv4-mapped IPv6 included."""
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def load_or_create_token(path: Path) -> str:
    """The device's access token; on first start 256 random bits, written atomically, 0600.

    The control plane (or an operator with a shell on the device) reads it from here.
    """
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        atomic_write_bytes(path, (token + "\n").encode("ascii"))
        path.chmod(0o600)
        log.info("created the device access token in %s", path)
        return token
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the access token {path}: {exc}") from None
    if len(token) < TOKEN_BYTES:
        raise ConfigError(f"the access token in {path} is shorter than {TOKEN_BYTES} characters")
    return token


class AccessPolicy:
    """Decides whether a request is trusted; ``middleware`` guards the trusted-only paths."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("ascii")

    def trusted(self, request: web.BaseRequest) -> bool:
        if is_loopback(request.remote):
            return True
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith(BEARER):
            return False
        offered = header[len(BEARER) :].strip().encode("utf-8", "replace")
        return hmac.compare_digest(offered, self._token)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in TRUSTED_ONLY and not self.trusted(request):
            return web.json_response(
                {
                    "error": f"{request.path} is for this device and its operators: "
                    "connect from the device itself (loopback) or send "
                    "'Authorization: Bearer <device access token>'"
                },
                status=403,
            )
        return await handler(request)


ACCESS_POLICY = web.AppKey("access_policy", AccessPolicy)
