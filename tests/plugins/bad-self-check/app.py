"""A dashboard that serves fine but fails its own check, so it must never take traffic."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.http_handler import Body_Text, Request, Response


class HttpHandler(exports.HttpHandler):
    def handle(self, request: Request) -> Response:
        return Response(200, [], Body_Text("should never be served"))


class SelfCheck(exports.SelfCheck):
    def check(self) -> None:
        raise Err("calibration table missing")
