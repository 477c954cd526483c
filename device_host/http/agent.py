"""The agent's push endpoint: the control plane hands over a signed desired state."""

from __future__ import annotations

from aiohttp import web

from device_host.agent import DeviceAgent
from device_host.delivery.statements import StatementError

MAX_PUSH_BYTES = 256 * 1024


class AgentRoutes:
    def __init__(self, agent: DeviceAgent) -> None:
        self._agent = agent

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/agent/v1/desired-state", self.desired_state)

    async def desired_state(self, request: web.Request) -> web.Response:
        """202 once the signature checks out; the device converges in the background."""
        if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
            return web.json_response({"error": "push too large"}, status=413)
        try:
            envelope = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        try:
            self._agent.accept_push(envelope)
        except StatementError as exc:
            return web.json_response({"error": str(exc)}, status=403)
        return web.json_response({"status": "accepted"}, status=202)
