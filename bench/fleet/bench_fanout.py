"""Heartbeats during an assignment to the whole fleet: the stall, the errors, the command's
return time, the time until every desired state is written and until every notice is
published.

A throwaway control plane (gunicorn with ``control_plane/gunicorn_settings.py``, its job
worker ``manage.py qcluster`` and a Mosquitto over TLS configured by the broker role's
templates, ``tests/servers_mqtt.py``) over ``--devices`` devices made by ``bulk_create`` (as
``bench_rollouts.py`` does). ``--senders`` threads send conditional heartbeats of random
devices over real HTTP at ``--rate`` per second (each simulated device sends the sequence
it last got, so an answer carries an envelope only when it changed), first for
``--baseline`` seconds with nothing else going on (the baseline), then while ``manage.py
assign_release hello 1.0.0 all`` runs and the worker writes the desired states chunk by
chunk (each signed outside any transaction, written in a short one with its outbox rows:
``rollouts/desired.py``) and publishes the notices (``notices/jobs.py``; the broker's
PUBACKs count, no device subscribes). Reported: heartbeat p50/p99/max and failures before
and during, the command's return time, the time until every device's desired state names
the version, and the time until no notice is pending. ``--worker-nice`` runs the worker at
a lower CPU priority, as a deployment can (``Nice=`` in its systemd unit). Measurements
only.

    scripts/with-postgres.sh .venv/bin/python bench/fleet/bench_fanout.py --database postgresql
    .venv/bin/python bench/fleet/bench_fanout.py --devices 1000          # quick, SQLite
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from bench_heartbeats import control_plane_env, database_url, manage, start_gunicorn
from bench_rollouts import publish, seed_devices, start_worker
from common import (
    REPO,
    VENV_BIN,
    WORK,
    Table,
    exit_on_sigterm,
    machine,
    machine_line,
    renice_tree,
    write_results,
)

from tests.servers_mqtt import Mosquitto
from tests.support import free_port, wait_until

BODY = {"host_version": "0.1.0", "plugins": [], "readings": [], "events": [], "health": []}


class Heartbeats:
    """Heartbeats of random devices at a steady rate; each one's start time and latency."""

    def __init__(self, url: str, tokens: list[str], rate: float, senders: int) -> None:
        self.url, self.tokens, self.rate = url + "/api/v1/heartbeat", tokens, rate
        self.sequences = dict.fromkeys(tokens, 0)
        """Per device, the desired-state sequence it last got (what it sends)."""
        self.envelopes = 0
        """Answers that carried an envelope."""
        self.samples: list[tuple[float, float, bool]] = []
        """(started, seconds, ok) per heartbeat, wall clock."""
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=senders)
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()

    def between(self, start: float, end: float) -> list[tuple[float, float, bool]]:
        return [s for s in list(self.samples) if start <= s[0] < end]

    def _run(self) -> None:
        interval, due = 1.0 / self.rate, time.time()
        while not self._stop.is_set():
            self._pool.submit(self._send, random.choice(self.tokens))
            due += interval
            self._stop.wait(max(0.0, due - time.time()))

    def _send(self, token: str) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({**BODY, "desired_sequence": self.sequences[token]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        began = time.time()
        ok = False
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
                ok = response.status == 200
            if "desired" in answer:
                self.envelopes += 1
                self.sequences[token] = json.loads(answer["desired"]["statement"])["sequence"]
        except (urllib.error.URLError, OSError, ValueError):
            ok = False
        self.samples.append((began, time.time() - began, ok))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0


def figures(samples: list[tuple[float, float, bool]]) -> dict[str, float]:
    latencies = [s[1] for s in samples]
    return {
        "heartbeats": len(samples),
        "errors": sum(1 for s in samples if not s[2]),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies, default=0.0) * 1000, 1),
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="heartbeats per second")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=600.0, help="for the fan-out")
    parser.add_argument(
        "--worker-nice", type=int, default=0, help="the job worker's nice increment"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    state = WORK / f"fanout-{args.database}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    device_ca = state / "device-ca.pem"
    env = {
        **control_plane_env(state, database_url(args.database, state)),
        "CONTROL_PLANE_JOB_WORKERS": "1",
        "CONTROL_PLANE_JOBS_SYNC": "0",
        "CONTROL_PLANE_DEVICE_CA_CERT_PATH": str(device_ca),
        "CONTROL_PLANE_DEVICE_CA_KEY_PATH": str(state / "device-ca-key.pem"),
        "DJANGO_SETTINGS_MODULE": "control_plane.settings",
    }
    log = state / "setup.log"
    publish({**env, "CONTROL_PLANE_JOBS_SYNC": "1"}, log)
    manage(env, log, "create_device_ca")
    (state / "broker").mkdir()
    broker = Mosquitto(state / "broker", device_ca_file=device_ca)
    env["CONTROL_PLANE_MQTT_URL"] = broker.url
    env["CONTROL_PLANE_MQTT_CA_FILE"] = str(broker.server_ca_file)
    os.environ.update(env)
    import django

    django.setup()
    from control_plane.devices.models import Device
    from control_plane.notices.models import PENDING, DesiredNotice
    from control_plane.rollouts.desired import chunk_size

    tokens = list(seed_devices(args.devices).values())
    port = free_port()
    broker.start()
    server = start_gunicorn(env, port, state / "gunicorn.log")
    worker = start_worker({**env, "CONTROL_PLANE_LOG_LEVEL": "INFO"}, state / "worker.log")
    if args.worker_nice:
        renice_tree(worker.pid, args.worker_nice)
    chunk = chunk_size()
    try:
        with Heartbeats(f"http://127.0.0.1:{port}", tokens, args.rate, args.senders) as beats:
            time.sleep(2)  # warm-up, not counted
            base_start = time.time()
            time.sleep(args.baseline)
            fan_start = time.time()
            command = subprocess.run(
                [
                    str(VENV_BIN / "python"),
                    str(REPO / "control_plane" / "manage.py"),
                    *("assign_release", "hello", "1.0.0", "all"),
                ],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            returned_s = time.time() - fan_start

            def written() -> bool:
                count = Device.objects.filter(desired_versions__hello="1.0.0").count()
                return bool(count == args.devices)

            wait_until(written, args.timeout, "every desired state written")
            written_s = time.time() - fan_start

            def published() -> bool:
                notices = DesiredNotice.objects
                return notices.count() == args.devices and not notices.filter(PENDING).exists()

            wait_until(published, args.timeout, "every notice published")
            published_s = time.time() - fan_start
            time.sleep(2)  # the completion step and its in_rollout clearing
            fan_end = time.time()
        baseline = figures(beats.between(base_start, fan_start))
        fanout = figures(beats.between(fan_start, fan_end))
    finally:
        for process in (worker, server):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()
    data = {
        "machine": machine(),
        "database": args.database,
        "devices": args.devices,
        "rate": args.rate,
        "worker_nice": args.worker_nice,
        "chunk": chunk,
        "load_before": load_before,
        "command_output": command.stdout.strip(),
        "command_return_s": round(returned_s, 2),
        "all_desired_written_s": round(written_s, 1),
        "all_notices_published_s": round(published_s, 1),
        "envelopes_answered": beats.envelopes,
        "baseline": baseline,
        "fanout": fanout,
        "stall_ms": round(max(0.0, fanout["max_ms"] - baseline["p99_ms"]), 1),
    }
    print(json.dumps(data, indent=2, default=str))
    write_results(f"fanout-{args.database}", data, markdown(data))


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    table = Table(["", "heartbeats", "errors", "p50", "p99", "max"], [])
    for name in ("baseline", "fanout"):
        row = data[name]
        table.rows.append(
            [
                "no assignment" if name == "baseline" else "during the assignment",
                f"{row['heartbeats']:,}",
                str(row["errors"]),
                f"{row['p50_ms']} ms",
                f"{row['p99_ms']} ms",
                f"{row['max_ms']} ms",
            ]
        )
    return "\n".join(
        [
            f"### Assignment to {data['devices']:,} devices ({data['database']})",
            "",
            machine_line(data["machine"]),
            "",
            f"`assign_release … all` returned in {data['command_return_s']} s; every desired "
            f"state written {data['all_desired_written_s']} s and every notice published "
            f"(the broker's PUBACK, outbox pending = 0) {data['all_notices_published_s']} s "
            f"after it started; heartbeat stall (slowest during the fan-out minus the "
            f"baseline's p99): {data['stall_ms']} ms. Chunk: {data['chunk']} devices per write "
            f"transaction; worker nice {data['worker_nice']}; load average before "
            f"{data['load_before']:.1f}; {data['envelopes_answered']:,} heartbeat answers "
            f"carried an envelope (each simulated device takes its new one once).",
            "",
            table.markdown(),
        ]
    )


if __name__ == "__main__":
    main()
