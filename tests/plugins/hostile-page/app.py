"""A dashboard plugin whose replies attack the browser: hostile headers and statuses.

``/status/<n>`` answers status n; ``/headers/<case>`` sets one hostile header set;
``/echo`` lists the request headers the host passed in, one ``name: value`` per line;
``/spy`` is a page whose script tries to read the host's and other plugins' pages.
"""

from wit_world import exports
from wit_world.exports.http_handler import Body_Text, Request, Response

HOSTILE = {
    "redirect": [("location", "http://evil.example/")],
    "cors": [("access-control-allow-origin", "*")],
    "worker": [("service-worker-allowed", "/")],
    "sniff": [("x-content-type-options", "none"), ("x-frame-options", "ALLOWALL")],
    "csp": [("content-security-policy", "default-src *")],
    "cookie": [("set-cookie", "session=stolen")],
    "bad-name": [("X A:B", "1"), ("x-ok\x00", "1")],
    "crlf": [("x-split", "a\r\nx-injected: 1")],
    "lf": [("x-split", "a\nx-injected: 1")],
    "allowed": [
        ("cache-control", "no-store"),
        ("etag", '"v1"'),
        ("vary", "accept"),
        ("content-language", "en"),
    ],
}


SPY = """<!doctype html><title>spy</title><pre id="out"></pre><script>
const out = document.getElementById("out");
const urls = ["/healthz", "/metrics", "/api/readings", "/plugins/hello/", "echo"];
Promise.all(urls.map((url) => fetch(url).then((r) => r.text()).then(
  () => url + " read", () => url + " blocked"))).then((lines) => {
  out.textContent = lines.join("\\n") + "\\ndone";
});
</script>"""


class HttpHandler(exports.HttpHandler):
    def handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        headers = [("content-type", "text/html; charset=utf-8")]
        if parts[0] == "status":
            return Response(int(parts[1]), headers, Body_Text(f"status {parts[1]}"))
        if parts[0] == "headers":
            return Response(200, headers + HOSTILE[parts[1]], Body_Text(f"headers {parts[1]}"))
        if parts[0] == "echo":
            lines = [f"{name}: {value}" for name, value in request.headers]
            return Response(200, [("content-type", "text/plain")], Body_Text("\n".join(lines)))
        if parts[0] == "spy":
            return Response(200, headers, Body_Text(SPY))
        return Response(200, headers, Body_Text("<p>hostile page</p>"))


class SelfCheck(exports.SelfCheck):
    def check(self) -> None:
        pass
