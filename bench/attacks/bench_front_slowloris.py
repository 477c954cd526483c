"""Slowloris on the control plane's TLS front: ``/healthz`` latency through nginx (the role's
nginx.conf.j2) and gunicorn (the role's settings, sync workers, a Unix socket), with and
without 1,000 half-open TLS connections, in one run; then bare gunicorn on loopback with a
handful, for contrast (127.0.0.1 only, bounded).

.venv/bin/python bench/attacks/bench_front_slowloris.py [--seconds 15] [--half-open 1000]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

import harness  # noqa: E402

from tests.http.attacks import Slowloris  # noqa: E402
from tests.servers_tls import ControlPlaneBehindFront, FleetCA, Nginx, TlsSlowloris  # noqa: E402
from tests.support import ControlPlaneProcess, free_port  # noqa: E402

CLIENTS = 4
TIMEOUT_S = 15.0
"""What a device waits for a heartbeat's answer."""


def _load(
    connect: Callable[[], http.client.HTTPConnection], seconds: float
) -> tuple[list[float], int]:
    """CLIENTS threads, a new connection (and TLS handshake) per request, as devices make."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            connection = connect()
            try:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
            finally:
                connection.close()
            with lock:
                if ok:
                    latencies.append((time.monotonic() - started) * 1000)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures[0]


def _row(label: str, latencies: list[float], failures: int) -> list[object]:
    def pct(p: float) -> str:
        return f"{harness.percentile(latencies, p):.1f}" if latencies else "-"

    worst = f"{max(latencies):.1f}" if latencies else "-"
    return [label, len(latencies), failures, pct(50), pct(99), worst]


def _through_front(
    workdir: Path, seconds: float, half_open: int
) -> tuple[list[list[object]], dict[str, object]]:
    ca = FleetCA(workdir / "ca")
    certificate, key = ca.issue_server(["localhost", "127.0.0.1"])
    https_port = free_port()
    control_plane = ControlPlaneBehindFront(
        workdir / "control-plane", public_url=f"https://localhost:{https_port}"
    )
    control_plane.set_up()
    control_plane.start()
    nginx = Nginx(
        workdir / "nginx",
        certificate,
        key,
        app_servers=[f"unix:{control_plane.socket_path}"],
        https_port=https_port,
    )
    context = ca.client_context()

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPSConnection(
            "localhost", https_port, context=context, timeout=TIMEOUT_S
        )

    rows: list[list[object]] = []
    figures: dict[str, object] = {}
    try:
        nginx.start()
        rows.append(_row("nginx + gunicorn, no attack", *_load(connect, seconds)))
        started = time.monotonic()
        with TlsSlowloris(https_port, half_open, seconds=seconds + 90, context=context) as attack:
            figures["ramp_s"] = round(time.monotonic() - started, 1)
            figures["attack_open_at_start"] = attack.opened
            rows.append(
                _row(f"nginx + gunicorn, {half_open} half-open TLS", *_load(connect, seconds))
            )
        figures["attack_connections_opened"] = attack.opened
        figures["closed_by_nginx"] = attack.closed_by_server
        figures["attack_connect_failures"] = attack.failed
    finally:
        nginx.stop()
        control_plane.stop()
    return rows, figures


def _bare_gunicorn(workdir: Path, seconds: float, half_open: int) -> list[list[object]]:
    """The role's previous shape: sync workers reached directly, no front."""
    control_plane = ControlPlaneProcess(workdir / "bare", worker=False)
    control_plane.set_up()
    control_plane.start()

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", control_plane.port, timeout=TIMEOUT_S)

    try:
        rows = [_row("bare gunicorn, no attack", *_load(connect, seconds))]
        with Slowloris(control_plane.port, half_open, seconds=seconds + 60):
            rows.append(_row(f"bare gunicorn, {half_open} half-open", *_load(connect, seconds)))
    finally:
        control_plane.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--bare-half-open", type=int, default=16)
    args = parser.parse_args()
    load = harness.load_before()
    workdir = harness.fresh_workdir("front-slowloris")
    rows, figures = _through_front(workdir, args.seconds, args.half_open)
    rows += _bare_gunicorn(workdir, args.seconds, args.bare_half_open)
    figures.update(
        {
            "half_open": args.half_open,
            "bare_half_open": args.bare_half_open,
            "seconds": args.seconds,
            "rows": rows,
            "load_before": load,
        }
    )
    header = ["", "answered", "failed", "p50 ms", "p99 ms", "max ms"]
    section = f"""## Slowloris on the control plane's TLS front

`/healthz` (a database query and the signing key) from {CLIENTS} clients, a new connection
and TLS handshake per request (as a device's heartbeat), {args.seconds:.0f} s per row; a
failure is an error or no answer within {TIMEOUT_S:.0f} s. nginx runs the role's
`nginx.conf.j2` in front of gunicorn with the role's settings (2 sync workers per core, on a
Unix socket). The attack holds {args.half_open} TLS connections that finished the handshake
and sent part of a request's headers, reopening each one nginx closes
({figures["attack_connections_opened"]} opened, {figures["closed_by_nginx"]} closed by nginx
after its 10 s header timeout; ramp {figures["ramp_s"]} s). For contrast, gunicorn reached
directly (`tests/support.py` ControlPlaneProcess: 2 workers x 4 threads) with
{args.bare_half_open} plain half-open connections. The attack runs in this process, taking
CPU from the load clients too.

{harness.table(header, rows)}
"""
    harness.save("front_slowloris", figures, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
