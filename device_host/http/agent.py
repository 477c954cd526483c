"""The agent's push endpoint: the control plane hands over a signed desired state."""

from __future__ import annotations

from aiohttp import web

from device_host.agent import DeviceAgent
from device_host.agent.agent import StaleDesiredState
from fleet_common.wire import paths
from fleet_common.wire.jsonlimits import JsonRefused, loads_bounded
from fleet_common.wire.statements import StatementError

MAX_PUSH_BYTES = 256 * 1024


class AgentRoutes:
    def __init__(self, agent: DeviceAgent) -> None:
        self._agent = agent

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(paths.PUSH_DESIRED_STATE, self.desired_state)

    async def desired_state(self, request: web.Request) -> web.Response:
        """202 once the signature checks out; the device converges in the background.

        The body is bounded whatever its framing (a chunked body has no Content-Length):
        aiohttp stops reading past the app's ``client_max_size``, and anything over this
        route's own limit is refused before it is parsed, with a bound on nesting.
        """
        too_large = _error(413, f"a push is at most {MAX_PUSH_BYTES} bytes")
        if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
            return too_large
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large
        if len(body) > MAX_PUSH_BYTES:
            return too_large
        try:
            envelope = loads_bounded(body, max_bytes=MAX_PUSH_BYTES)
        except JsonRefused as exc:
            return _error(400, f"the body is refused: {exc}")
        if not isinstance(envelope, dict):
            return _error(400, "the body must be a JSON object (a signed envelope)")
        try:
            self._agent.accept_push(envelope)
        except StaleDesiredState as exc:
            return _error(409, str(exc))
        except StatementError as exc:
            return _error(403, str(exc))
        return web.json_response({"status": "accepted"}, status=202)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
