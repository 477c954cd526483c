"""Host-rendered pages for when no plugin can answer."""

from __future__ import annotations

from html import escape

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#1b1d23;color:#e8e8e8;margin:3rem auto;
max-width:40rem;padding:0 1rem}}h1{{color:#ff8a65;font-size:1.4rem}}code{{color:#ffd54f}}
p.detail{{background:#2a2d36;padding:1rem;border-radius:6px;overflow-wrap:anywhere}}</style>
</head><body><h1>{title}</h1><p class="detail">{detail}</p>
<p>The device host is up; see <a href="/healthz" style="color:#80cbc4">/healthz</a>.</p>
</body></html>"""


def error_page(status: int, title: str, detail: str) -> web.Response:
    body = _PAGE.format(title=escape(title), detail=escape(detail))
    return web.Response(status=status, text=body, content_type="text/html")
