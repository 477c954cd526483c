"""How fast the rollout engine decides at 10,000 devices once a canary's heartbeats arrive.

A throwaway control plane (gunicorn with ``control_plane/gunicorn_settings.py`` and its job
worker ``manage.py qcluster``, which runs the engine) over ``--devices`` devices made by
``bulk_create`` (tokens, tags kitchen/greenhouse).
Two rollouts of hello, each ``--waves`` (default 5,25,100: a canary of 500):

* **good**: the canary's devices heartbeat over real HTTP, once a second each, reporting
  the new version running with clean health counters. Measured: from the end of the first
  round in which every canary device reported it (the last answer) to the engine's
  decision counting all of them installed; and from the moment the soak could end (the
  last member's install time plus ``--soak``) to "wave passed", with the cost of starting
  the next wave (2,000 devices: rows and signed desired states) in the same step.
* **bad**: the next rollout's canary reports the version trapping (health counters with
  crashes). Measured: from the end of that first round to the halt, and to the
  automatic rollback.

Heartbeats are sent by ``--senders`` threads in this process; the engine's decisions are
read from the database afterwards (their own timestamps). Measurements only.

    .venv/bin/python bench/fleet/bench_rollouts.py                        # SQLite
    scripts/with-postgres.sh .venv/bin/python bench/fleet/bench_rollouts.py --database postgresql
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_heartbeats import control_plane_env, database_url, manage, start_gunicorn
from common import (
    REPO,
    VENV_BIN,
    WORK,
    Table,
    build_variant,
    exit_on_sigterm,
    machine,
    machine_line,
    speed_probe,
    wait_for_quiet,
    write_results,
)

from tests.support import die_with_parent, free_port, wait_until

GOOD_HEALTH = {"requests": 10, "self_check": "passed", "p50_ms": 1.2, "p99_ms": 4.0}
BAD_HEALTH = {
    "requests": 10,
    "errors": 4,
    "traps": {"crash": 4},
    "fallbacks": 4,
    "self_check": "passed",
    "p50_ms": 1.2,
    "p99_ms": 40.0,
}


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--waves", default="5,25,100")
    parser.add_argument("--soak", type=int, default=5, help="seconds the good canary soaks")
    parser.add_argument("--senders", type=int, default=16, help="heartbeat threads")
    args = parser.parse_args()

    state = WORK / f"rollouts-{args.database}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    env = {
        **control_plane_env(state, database_url(args.database, state)),
        "CONTROL_PLANE_JOB_WORKERS": "1",
        "CONTROL_PLANE_JOBS_SYNC": "0",
        "CONTROL_PLANE_HEARTBEAT_INTERVAL_S": "1",
        "DJANGO_SETTINGS_MODULE": "control_plane.settings",
    }
    log = state / "setup.log"
    started = time.monotonic()
    versions = publish({**env, "CONTROL_PLANE_JOBS_SYNC": "1"}, log)  # checks run inline
    os.environ.update(env)
    import django

    django.setup()
    tokens = seed_devices(args.devices)
    seeded_s = time.monotonic() - started
    print(f"seeded {args.devices:,} devices and 2 versions in {seeded_s:.0f} s")

    port = free_port()
    server = start_gunicorn(env, port, state / "gunicorn.log")
    worker = start_worker({**env, "CONTROL_PLANE_LOG_LEVEL": "INFO"}, state / "worker.log")
    try:
        url = f"http://127.0.0.1:{port}"
        waves = [float(p) for p in args.waves.split(",")]
        wait_for_quiet()
        probe_ms = speed_probe()
        good = good_rollout(url, tokens, versions["1.0.0"], waves, args)
        print(f"  good: {json.dumps(good)}")
        bad = bad_rollout(url, tokens, versions["2.0.0"], waves, args)
        print(f"  bad: {json.dumps(bad)}")
    finally:
        for process in (worker, server):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    data = {
        "machine": machine(),
        "database": args.database,
        "devices": args.devices,
        "waves": args.waves,
        "soak_s": args.soak,
        "senders": args.senders,
        "seed_s": round(seeded_s, 1),
        "speed_probe_ms": probe_ms,
        "good": good,
        "bad": bad,
    }
    write_results(f"rollouts-{args.database}", data, markdown(data))


def publish(env: dict[str, str], log: Path) -> dict[str, str]:
    """Migrates and publishes hello 1.0.0 and 2.0.0 (approved, not assigned); returns the
    sha256 of each version's component."""
    if env["CONTROL_PLANE_DATABASE_URL"].startswith("postgresql"):
        reset = "DROP SCHEMA public CASCADE; CREATE SCHEMA public"  # another bench's rows
        code = f"from django.db import connection; connection.cursor().execute({reset!r})"
        manage(env, log, "shell", "-c", code)
    manage(env, log, "migrate", "--noinput", "-v0")
    manage(env, log, "create_signing_key")
    found = {}
    for n in (1, 2):
        folder = build_variant(
            "hello", f"rollout-hello-{n}", replace={"version 1": f"version {n}"}, version=f"{n}.0.0"
        )
        manage(env, log, "publish_plugin", str(folder), "--approve")
        wasm = next(folder.glob("*.wasm")).read_bytes()
        found[f"{n}.0.0"] = hashlib.sha256(wasm).hexdigest()
    return found


def seed_devices(count: int) -> dict[str, str]:
    """``count`` devices by ``bulk_create``, half kitchen, half greenhouse; returns each
    device's id (as text) to its bearer token."""
    from django.utils import timezone

    from control_plane.devices.models import Device, Tag
    from control_plane.devices.tokens import hash_token

    now = timezone.now()
    tags = [Tag.objects.get_or_create(name=name)[0] for name in ("kitchen", "greenhouse")]
    secrets_by_name = {f"bench-pi-{i:05d}": secrets.token_urlsafe(32) for i in range(count)}
    devices = [
        Device(
            name=name,
            token_hash=hash_token(secret),
            host_version="0.1.0",
            engine_target="x86_64",
            last_seen=now,
        )
        for name, secret in secrets_by_name.items()
    ]
    Device.objects.bulk_create(devices, batch_size=1000)
    through = Device.tags.through
    through.objects.bulk_create(
        [through(device_id=d.pk, tag_id=tags[i % 2].pk) for i, d in enumerate(devices)],
        batch_size=1000,
    )
    return {str(d.pk): secrets_by_name[d.name] for d in devices}


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), str(REPO / "control_plane" / "manage.py"), "qcluster"],
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )

    def running() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"bench: the job worker exited:\n{log.read_text()[-3000:]}")
        return "running." in log.read_text(errors="replace")

    wait_until(running, 60, "the job worker")
    return process


class Heartbeats:
    """Every canary device heartbeats once per round, a round a second, until stopped."""

    def __init__(self, url: str, tokens: list[str], body: bytes, senders: int) -> None:
        self.url, self.tokens, self.body = url + "/api/v1/heartbeat", tokens, body
        self.rounds: list[tuple[float, float, int]] = []
        """(started, last answer, failures) per round, wall-clock seconds."""
        self._pool = ThreadPoolExecutor(max_workers=senders)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()

    def first_round_done(self, timeout: float = 120) -> float:
        wait_until(lambda: self.rounds, timeout, "a full round of canary heartbeats")
        return self.rounds[0][1]

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.time()
            answers = list(self._pool.map(self._send, self.tokens))
            failures = sum(1 for ok in answers if not ok)
            self.rounds.append((began, max(time.time(), began), failures))
            self._stop.wait(max(0.0, 1.0 - (time.time() - began)))

    def _send(self, token: str) -> bool:
        request = urllib.request.Request(
            self.url,
            data=self.body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                return bool(response.status == 200)
        except OSError:
            return False


def heartbeat(version: str, sha256: str, health: dict[str, object]) -> bytes:
    """A device running hello ``version``, with its health counters since the last one."""
    body = {
        "host_version": "0.1.0",
        "plugins": [
            {
                "name": "hello",
                "version": version,
                "sha256": sha256,
                "state": "running",
                "trap_count": 0,
                "last_error": None,
            }
        ],
        "readings": [],
        "events": [],
        "health": [{"plugin": "hello", "version": version, **health}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def start_rollout(version: str, waves: list[float], soak_s: int) -> tuple[Any, float]:
    """Creates the rollout in this process, as ``manage.py rollout start`` does; returns it
    and the seconds it took (planning every device and starting the canary)."""
    from control_plane.rollouts.selectors import find_version
    from control_plane.rollouts.services import create_rollout

    began = time.monotonic()
    rollout = create_rollout(
        version=find_version("hello", version), target="all", waves=waves, soak_s=soak_s
    )
    return rollout, time.monotonic() - began


def canary_tokens(rollout: Any, tokens: dict[str, str]) -> list[str]:
    from control_plane.rollouts.models import Member

    ids = Member.objects.filter(rollout=rollout, wave=0).values_list("device_id", flat=True)
    return [tokens[str(device_id)] for device_id in ids]


def decision(
    rollout: Any, kind: str, timeout: float, match: Callable[[Any], bool] | None = None
) -> Any:
    """The first decision of ``kind`` (that ``match`` accepts), waiting for it."""
    from control_plane.rollouts.models import Decision

    def found() -> Any:
        for row in Decision.objects.filter(rollout=rollout, kind=kind).order_by("at", "pk"):
            if match is None or match(row):
                return row
        return None

    return wait_until(found, timeout, f"a {kind} decision of {rollout}")


def good_rollout(
    url: str, tokens: dict[str, str], sha256: str, waves: list[float], args: argparse.Namespace
) -> dict[str, object]:
    from control_plane.rollouts.models import Member
    from control_plane.rollouts.services import abort_rollout

    rollout, create_s = start_rollout("1.0.0", waves, args.soak)
    canary = canary_tokens(rollout, tokens)
    body = heartbeat("1.0.0", sha256, GOOD_HEALTH)
    with Heartbeats(url, canary, body, args.senders) as beats:
        reported = beats.first_round_done()
        installed = decision(
            rollout,
            "progress",
            120,
            lambda d: (
                d.wave == 0
                and d.counts.get("installed", 0) + d.counts.get("healthy", 0) == len(canary)
            ),
        )
        passed = decision(rollout, "wave-passed", 120 + args.soak)
        next_wave = decision(rollout, "wave-started", 60, lambda d: d.wave == 1)
    last_install = max(
        Member.objects.filter(rollout=rollout, wave=0).values_list("installed_at", flat=True)
    )
    abort_rollout(rollout=rollout)
    return {
        "rollout": rollout.pk,
        "canary": len(canary),
        "create_s": round(create_s, 3),
        "heartbeat_round_s": _round_s(beats.rounds),
        "heartbeat_failures": sum(r[2] for r in beats.rounds),
        "reported_to_installed_s": round(_ts(installed.at) - reported, 3),
        "soak_end_to_passed_s": round(_ts(passed.at) - _ts(last_install) - args.soak, 3),
        "next_wave_start_s": round(_ts(next_wave.at) - _ts(passed.at), 3),
        "next_wave_devices": next_wave.counts.get("devices"),
    }


def bad_rollout(
    url: str, tokens: dict[str, str], sha256: str, waves: list[float], args: argparse.Namespace
) -> dict[str, object]:
    rollout, create_s = start_rollout("2.0.0", waves, 300)
    canary = canary_tokens(rollout, tokens)
    body = heartbeat("2.0.0", sha256, BAD_HEALTH)
    with Heartbeats(url, canary, body, args.senders) as beats:
        reported = beats.first_round_done()
        halted = decision(rollout, "halted", 120)
        rolled_back = decision(rollout, "rolled-back", 120)
    rollout.refresh_from_db()
    return {
        "rollout": rollout.pk,
        "canary": len(canary),
        "create_s": round(create_s, 3),
        "heartbeat_round_s": _round_s(beats.rounds),
        "heartbeat_failures": sum(r[2] for r in beats.rounds),
        "first_report_to_halt_s": round(_ts(halted.at) - beats.rounds[0][0], 3),
        "reported_to_halt_s": round(_ts(halted.at) - reported, 3),
        "halt_to_rolled_back_s": round(_ts(rolled_back.at) - _ts(halted.at), 3),
        "halt_reason": rollout.halt_reason[:200],
        "status": rollout.status,
    }


def _ts(when: datetime) -> float:
    return when.timestamp()


def _round_s(rounds: list[tuple[float, float, int]]) -> float:
    """The median time one round of canary heartbeats took."""
    spans = sorted(last - began for began, last, _ in rounds)
    return round(spans[len(spans) // 2], 3) if spans else 0.0


def markdown(data: dict[str, Any]) -> str:
    good, bad = data["good"], data["bad"]
    rows = [
        ("good: create the rollout (plan every device, start the canary)", good["create_s"]),
        ("good: whole canary reported → all installed", good["reported_to_installed_s"]),
        ("good: soak over → wave passed", good["soak_end_to_passed_s"]),
        (
            f"good: start the next wave ({good['next_wave_devices']} devices)",
            good["next_wave_start_s"],
        ),
        ("bad: first trapping report sent → halted", bad["first_report_to_halt_s"]),
        ("bad: halted → rolled back", bad["halt_to_rolled_back_s"]),
        ("one round of canary heartbeats (median)", good["heartbeat_round_s"]),
    ]
    table = Table(
        ["step (decision times from the engine's records)", "seconds"],
        [[a, str(b)] for a, b in rows],
    )
    return (
        f"### Rollout decisions at {data['devices']:,} devices, {data['database']}\n\n"
        f"{machine_line(data['machine'])}. Waves {data['waves']} (a canary of "
        f"{good['canary']}), soak {data['soak_s']} s for the good rollout. The canary's "
        f"devices heartbeat over HTTP in rounds of one heartbeat each, at most a round a "
        f"second ({data['senders']} sender threads in the bench process; median round "
        f"{good['heartbeat_round_s']} s); the engine runs in the job worker (one process), "
        f"queued by heartbeats (debounced 1 s). Times come from the engine's decisions. Failed "
        f"heartbeats: {good['heartbeat_failures']} good, {bad['heartbeat_failures']} bad. "
        f"Halt reason: {bad['halt_reason']!r}. Speed probe {data['speed_probe_ms']} ms.\n\n"
        f"{table.markdown()}\n"
    )


if __name__ == "__main__":
    main()
