"""gunicorn settings: ``gunicorn -c python:control_plane.gunicorn_settings control_plane.wsgi``.

Command-line flags override these (``-w 8``, ``-b unix:/run/pi-fleet/gunicorn.sock``).

gunicorn is never reachable from the network: nginx in front of it terminates TLS, holds slow
clients and refuses oversized bodies, and it alone sets ``X-Forwarded-Proto``, which the
settings trust (``CONTROL_PLANE_HTTPS``). So the address is a Unix socket (the role's) or
loopback (a developer's), and a wildcard address stops the start.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

bind = "127.0.0.1:8000"
# Sync workers: a heartbeat is ~1 ms of CPU and devices open a connection per heartbeat.
# Two per core measured best (about 1,400 heartbeats/s with 5 readings each on 2 cores).
workers = 2 * multiprocessing.cpu_count()
# An upload compiles the component for seconds; a minute leaves room on a slow host.
timeout = 60
graceful_timeout = 30
# Compiling leaves a worker hundreds of MB larger; recycle workers now and then.
max_requests = 20000
max_requests_jitter = 2000
worker_tmp_dir = "/dev/shm"
preload_app = True

WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def on_starting(server: Any) -> None:
    """Refuses to listen on every interface, where anyone could forge ``X-Forwarded-Proto``."""
    for address in server.cfg.address:
        if isinstance(address, tuple) and address[0] in WILDCARD_HOSTS:
            host = f"[{address[0]}]" if ":" in address[0] else address[0] or "*"
            raise SystemExit(
                f"gunicorn: refusing to bind {host}:{address[1]} (every interface); "
                "bind a Unix socket (unix:/run/pi-fleet/gunicorn.sock) or 127.0.0.1 behind nginx"
            )
