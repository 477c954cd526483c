"""The smallest dashboard: says which version it is, to watch hot swaps happen."""

from wit_world import exports
from wit_world.exports.http_handler import Body_Text, Request, Response

GREETING = "hello from version 1"


class HttpHandler(exports.HttpHandler):
    def handle(self, request: Request) -> Response:
        return Response(200, [("content-type", "text/plain")], Body_Text(GREETING))


class SelfCheck(exports.SelfCheck):
    def check(self) -> None:
        pass
