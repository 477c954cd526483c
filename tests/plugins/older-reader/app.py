"""Built when the dht22 interface had only `read`: it must still load on a newer host."""

from wit_world import exports
from wit_world.exports.http_handler import Body_Text, Request, Response
from wit_world.imports import dht22


class HttpHandler(exports.HttpHandler):
    def handle(self, request: Request) -> Response:
        return Response(200, [], Body_Text(f"{dht22.read(4).temperature_c:.1f}"))
