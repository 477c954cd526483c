"""Built against a forged contract: a wrong handler signature and an import nobody provides."""

from wit_world import exports
from wit_world.imports import camera


class HttpHandler(exports.HttpHandler):
    def handle(self, path: str) -> str:
        return f"{path}: {len(camera.snap())} bytes"
