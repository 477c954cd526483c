"""How many heartbeats per second the control plane absorbs (target: 1,000/s on 2 cores).

A throwaway control plane with three published plugins assigned to all devices and
``--devices`` enrolled devices (through the services, so each has a real signed desired
state that every heartbeat answer carries), served by gunicorn with
``control_plane/gunicorn_settings.py``. wrk (``heartbeat.lua``) sends heartbeats with a random
device's token, the three plugins' status and 0, 5 and 20 readings, for ``--duration``
seconds each after a short warm-up. Afterwards the stored readings are counted: every
heartbeat's readings must be there. ``--health 0,3`` runs each row twice: without health
counters (the baseline) and with one health entry per plugin (requests, errors, traps,
latency, self-check, sensor age), as a device sends for plugins that did something.

    .venv/bin/python bench/fleet/bench_heartbeats.py                        # SQLite
    scripts/with-postgres.sh .venv/bin/python bench/fleet/bench_heartbeats.py --database postgresql
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from common import (
    REPO,
    VENV_BIN,
    WORK,
    CpuMeter,
    Table,
    build_variant,
    cpu_text,
    exit_on_sigterm,
    machine,
    machine_line,
    run_logged,
    speed_probe,
    wait_for_quiet,
    write_results,
)

from tests.support import die_with_parent, free_port, wait_until

PLUGINS = (("hello", "tests"), ("dashboard", "plugins"), ("thermostat", "plugins"))


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per run")
    parser.add_argument("--readings", default="0,5,20", help="readings per heartbeat")
    parser.add_argument(
        "--health", default="0", help="health entries per heartbeat (0 to 3), e.g. 0,3"
    )
    parser.add_argument(
        "--servers", default="1", help="app servers (gunicorn instances) to spread over, e.g. 1,2"
    )
    parser.add_argument(
        "--answers",
        default="conditional",
        help="conditional (heartbeats report their sequence) and/or full (they do not)",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is missing (apt-get install -y wrk)")

    state = WORK / f"heartbeats-{args.database}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    env = control_plane_env(state, database_url(args.database, state))
    log = state / "setup.log"
    started = time.monotonic()
    plugins = seed(env, state, log, args.devices)
    seeded_s = time.monotonic() - started
    settings = postgres_settings(env, log) if args.database != "sqlite" else {}

    runs = []
    for servers in [int(n) for n in args.servers.split(",")]:
        ports = [free_port() for _ in range(servers)]
        started_servers = []
        try:
            for index, port in enumerate(ports):
                started_servers.append(start_gunicorn(env, port, state / f"gunicorn-{index}.log"))
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            for readings in [int(n) for n in args.readings.split(",")]:
                for entries in [int(n) for n in args.health.split(",")]:
                    for answers in args.answers.split(","):
                        report = write_report(state, plugins, entries)
                        conditional = answers == "conditional"
                        sizes = heartbeat_sizes(
                            urls[0], state, plugins, readings, entries, conditional
                        )
                        wait_for_quiet()
                        wrk(urls, state, readings, report, args, args.warmup, conditional)
                        before = count_readings(env, log)
                        probe_ms = speed_probe()
                        meter = CpuMeter(names=("postgres",))
                        result = wrk(
                            urls, state, readings, report, args, args.duration, conditional
                        )
                        result["cpu"] = meter.stop()
                        result["speed_probe_ms"] = probe_ms
                        stored = count_readings(env, log) - before
                        result.update(
                            readings=readings,
                            health=entries,
                            servers=servers,
                            answers=answers,
                            sizes=sizes,
                        )
                        result["stored_readings"] = stored
                        runs.append(result)
                        print(summary_line(result))
        finally:
            for server in started_servers:
                server.send_signal(signal.SIGTERM)
            for server in started_servers:
                server.wait(timeout=30)

    data = {
        "machine": machine(),
        "database": args.database,
        "database_settings": settings,
        "devices": args.devices,
        "gunicorn_workers": workers(),
        "wrk": {"threads": args.threads, "connections": args.connections},
        "duration_s": args.duration,
        "seed_s": round(seeded_s, 1),
        "runs": runs,
    }
    write_results(f"heartbeats-{args.database}", data, markdown(data))


def database_url(database: str, state: Path) -> str:
    if database == "sqlite":
        return f"sqlite:///{state / 'control-plane.sqlite3'}"
    url = os.environ.get("CONTROL_PLANE_TEST_DATABASE_URL")
    if not url:
        raise SystemExit(
            "bench: no PostgreSQL; run under scripts/with-postgres.sh, which sets "
            "CONTROL_PLANE_TEST_DATABASE_URL"
        )
    return url


def postgres_settings(env: dict[str, str], log: Path) -> dict[str, str]:
    """What the server runs with (scripts/with-postgres.sh starts it with fsync=off)."""
    names = ("server_version", "fsync", "synchronous_commit", "shared_buffers")
    show = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        f"    for name in {names!r}:\n"
        "        c.execute(f'SHOW {name}'); print(name, c.fetchone()[0])\n"
    )
    lines = manage(env, log, "shell", "-c", show).splitlines()
    return dict(line.split(" ", 1) for line in lines if line.split(" ", 1)[0] in names)


def control_plane_env(state: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONTROL_PLANE_SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
        "CONTROL_PLANE_DEBUG": "0",
        "CONTROL_PLANE_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CONTROL_PLANE_DATABASE_URL": url,
        "CONTROL_PLANE_ARTIFACT_ROOT": str(state / "artifacts"),
        "CONTROL_PLANE_SIGNING_KEY_PATH": str(state / "signing-key.pem"),
        "CONTROL_PLANE_STATIC_ROOT": str(state / "static"),
        # Validation compiles are not what this measures: keep them between runs.
        "CONTROL_PLANE_COMPILED_CACHE_DIR": str(WORK / "control-plane-compiled"),
        "CONTROL_PLANE_LOG_LEVEL": "WARNING",
        # No job worker here: uploads are checked inline (bench_rollouts runs one).
        "CONTROL_PLANE_JOBS_SYNC": "1",
    }


def manage(env: dict[str, str], log: Path, *args: str) -> str:
    command = [str(VENV_BIN / "python"), str(REPO / "control_plane" / "manage.py"), *args]
    return run_logged(command, log, env=env, cwd=REPO).stdout


def seed(env: dict[str, str], state: Path, log: Path, devices: int) -> list[dict[str, object]]:
    """Migrates, publishes the plugins to all devices, enrolls the devices.

    Returns the plugins as a device reports them in its heartbeat.
    """
    manage(env, log, "migrate", "--noinput", "-v0")
    manage(env, log, "create_signing_key")
    plugins = []
    for name, _ in PLUGINS:
        folder = build_variant(name, f"heartbeat-{name}")
        manage(env, log, "publish_plugin", str(folder), "--assign", "all")
        manifest = (folder / "manifest.toml").read_text()
        version = next(
            line.split("=", 1)[1].strip().strip('"')
            for line in manifest.splitlines()
            if line.startswith("version")
        )
        wasm = next(folder.glob("*.wasm")).read_bytes()
        plugins.append(
            {
                "name": name,
                "version": version,
                "sha256": hashlib.sha256(wasm).hexdigest(),
                "state": "running",
                "trap_count": 0,
                "last_error": None,
            }
        )
    (state / "plugins.json").write_text(json.dumps(plugins, separators=(",", ":")))
    done = run_logged(
        [
            str(VENV_BIN / "python"),
            str(REPO / "bench" / "fleet" / "enroll_devices.py"),
            str(devices),
            str(state / "tokens.txt"),
            str(state / "sequences.txt"),
        ],
        log,
        env=env,
        cwd=REPO,
    )
    print(done.stdout.strip())
    return plugins


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "-c",
            "control_plane/gunicorn_settings.py",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "control_plane.wsgi",
        ],
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )

    def answers() -> bool:
        if server.poll() is not None:
            raise SystemExit(f"bench: gunicorn exited:\n{log.read_text()[-3000:]}")
        probe = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                f"http://127.0.0.1:{port}/api/v1/heartbeat",
            ],
            capture_output=True,
            text=True,
        )
        return probe.stdout == "401"

    try:
        wait_until(answers, 60, "gunicorn")
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server


def workers() -> int:
    import runpy

    return int(runpy.run_path(str(REPO / "control_plane" / "gunicorn_settings.py"))["workers"])


def health_entries(plugins: list[dict[str, object]], entries: int) -> list[dict[str, object]]:
    """Counters since the last heartbeat for the first ``entries`` plugins, as a device
    host sends them (`fleet_common.wire.health.PluginHealth.to_json`)."""
    return [
        {
            "plugin": plugin["name"],
            "version": plugin["version"],
            "requests": 12,
            "errors": 1,
            "traps": {"crash": 1},
            "fallbacks": 1,
            "self_check": "passed",
            "p50_ms": 1.4,
            "p99_ms": 7.5,
            "sensor_age_s": 1.2,
        }
        for plugin in plugins[:entries]
    ]


def write_report(state: Path, plugins: list[dict[str, object]], entries: int) -> Path:
    """The file heartbeat.lua splices in after ``"plugins":``: the plugins array and, with
    ``entries``, the ``"health"`` member after it (the script inserts the text as is)."""
    text = json.dumps(plugins, separators=(",", ":"))
    if entries:
        text += ',"health":' + json.dumps(health_entries(plugins, entries), separators=(",", ":"))
    path = state / f"plugins-health-{entries}.json"
    path.write_text(text)
    return path


def heartbeat_body(
    plugins: list[dict[str, object]], readings: int, entries: int = 0, sequence: int | None = None
) -> str:
    """The same shape as heartbeat.lua sends (and a device host)."""
    now = time.time()
    extra = {} if sequence is None else {"desired_sequence": sequence}
    return json.dumps(
        {
            **extra,
            "host_version": "0.1.0",
            "plugins": plugins,
            "health": health_entries(plugins, entries),
            "readings": [
                {
                    "source": "dht22:4",
                    "temperature_c": 21.0 + i / 10,
                    "humidity_pct": 45.0 + i / 10,
                    "taken_at": round(now - 3 * 3600 + i * 2, 5),
                }
                for i in range(readings)
            ],
            "events": [],
        },
        separators=(",", ":"),
    )


def heartbeat_sizes(
    url: str,
    state: Path,
    plugins: list[dict[str, object]],
    readings: int,
    entries: int = 0,
    conditional: bool = True,
) -> dict[str, int]:
    """Bytes of one heartbeat on the wire, headers included, as curl counts them; with
    ``conditional`` the heartbeat reports its device's current sequence."""
    body = state / f"heartbeat-{readings}-{entries}-{conditional}.json"
    sequence = int((state / "sequences.txt").read_text().split()[0]) if conditional else None
    body.write_text(heartbeat_body(plugins, readings, entries, sequence))
    token = (state / "tokens.txt").read_text().split()[0]
    done = subprocess.run(
        [
            "curl", "-s", "-o", "/dev/null", "-H", "Content-Type: application/json",
            "-H", f"Authorization: Bearer {token}", "--data-binary", f"@{body}",
            "-w", "%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}",
            f"{url}/api/v1/heartbeat",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status, request_headers, request_body, answer_headers, answer_body = map(
        int, done.stdout.split()
    )
    if status != 200:
        raise SystemExit(f"bench: a heartbeat got HTTP {status}")
    return {
        "request_headers": request_headers,
        "request_body": request_body,
        "answer_headers": answer_headers,
        "answer_body": answer_body,
    }


def count_readings(env: dict[str, str], log: Path) -> int:
    code = "from control_plane.devices.models import Reading; print(Reading.objects.count())"
    return int(manage(env, log, "shell", "-c", code).strip().splitlines()[-1])


def wrk(
    urls: list[str],
    state: Path,
    readings: int,
    report: Path,
    args: argparse.Namespace,
    seconds: int,
    conditional: bool,
) -> dict:  # type: ignore[type-arg]
    """One wrk per app server at once, the threads and connections split between them."""
    env = {
        **os.environ,
        "TOKENS": str(state / "tokens.txt"),
        "PLUGINS": str(report),
        "READINGS": str(readings),
    }
    if conditional:
        env["SEQUENCES"] = str(state / "sequences.txt")
    threads = max(1, args.threads // len(urls))
    connections = max(threads, args.connections // len(urls))
    script = str(REPO / "bench" / "fleet" / "heartbeat.lua")
    options = [f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    commands = [["wrk", *options, "-s", script, url] for url in urls]
    running = [
        subprocess.Popen(
            command,
            env={**env, "WRK_INSTANCE": str(instance)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for instance, command in enumerate(commands)
    ]
    raws = []
    for command, process in zip(commands, running, strict=True):
        stdout, stderr = process.communicate(timeout=seconds + 60)
        with (state / "wrk.log").open("a") as out:
            out.write(f"$ READINGS={readings} {' '.join(command)}\n{stdout}{stderr}\n")
        line = next((x for x in stdout.splitlines() if x.startswith("WRK_JSON ")), None)
        if line is None:
            raise SystemExit(f"bench: wrk printed no summary:\n{stdout}{stderr}")
        raws.append(json.loads(line.removeprefix("WRK_JSON ")))
    statuses: dict[str, int] = {}
    for raw in raws:
        for status, n in raw["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    requests = sum(raw["requests"] for raw in raws)
    ok = sum(n for status, n in statuses.items() if status.startswith("2"))
    sockets = {
        k: sum(raw["errors"][k] for raw in raws) for k in ("connect", "read", "write", "timeout")
    }
    return {
        "requests": requests,
        "ok": ok,
        "errors": requests - ok + sum(sockets.values()),
        "statuses": statuses,
        "socket_errors": sockets,
        "rate": round(sum(ok_of(raw) / (raw["duration_us"] / 1e6) for raw in raws), 1),
        "answer_bytes": round(sum(raw["bytes"] for raw in raws) / max(requests, 1)),
        # Across servers: the slower server's percentiles (wrk reports each on its own).
        "latency_ms": {
            k: round(max(raw["latency_us"][k] for raw in raws) / 1000, 1)
            for k in raws[0]["latency_us"]
        },
    }


def ok_of(raw: dict) -> int:  # type: ignore[type-arg]
    return sum(n for status, n in raw["statuses"].items() if status.startswith("2"))


def summary_line(run: dict) -> str:  # type: ignore[type-arg]
    latency = run["latency_ms"]
    return (
        f"  {run['servers']} server(s), {run['answers']} answers, "
        f"{run['readings']:>2} readings, {run.get('health', 0)} health: "
        f"{run['rate']:,.0f} heartbeats/s, "
        f"p50 {latency['p50']} ms, p99 {latency['p99']} ms, {run['errors']} errors, "
        f"{run['stored_readings']:,} readings stored of {run['ok'] * run['readings']:,}, "
        f"CPU % {cpu_text(run['cpu'])}; speed probe {run['speed_probe_ms']} ms"
    )


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    rows = []
    for run in data["runs"]:
        latency, sizes = run["latency_ms"], run["sizes"]
        baseline = next(
            (
                r
                for r in data["runs"]
                if r["readings"] == run["readings"]
                and not r.get("health")
                and r["servers"] == 1
                and r["answers"] == run["answers"]
            ),
            None,
        )
        ratio = f"{run['rate'] / baseline['rate']:.2f}" if baseline and baseline["rate"] else "-"
        rows.append(
            [
                str(run["servers"]),
                run["answers"],
                str(run["readings"]),
                str(run.get("health", 0)),
                f"{run['rate']:,.0f}",
                ratio,
                f"{latency['p50']}",
                f"{latency['p99']}",
                f"{run['errors']}",
                f"{run['stored_readings']:,}",
                f"{sizes['request_headers'] + sizes['request_body']:,} / "
                f"{sizes['answer_headers'] + sizes['answer_body']:,}",
                cpu_text(run["cpu"]),
                f"{run['speed_probe_ms']}",
            ]
        )
    table = Table(
        [
            "app servers",
            "answers",
            "readings",
            "health entries",
            "heartbeats/s",
            "vs 1 server, no health",
            "p50 ms",
            "p99 ms",
            "errors",
            "readings stored",
            "bytes up / down",
            "CPU % of a core",
            "probe ms",
        ],
        rows,
    )
    settings = data.get("database_settings") or {}
    database = data["database"]
    if settings:
        database += (
            f" {settings['server_version'].split()[0]} (fsync={settings['fsync']}, "
            f"synchronous_commit={settings['synchronous_commit']}, "
            f"shared_buffers={settings['shared_buffers']})"
        )
    else:
        database += " (WAL, synchronous=NORMAL)"
    return (
        f"### Heartbeats per second, {database}\n\n"
        f"{machine_line(data['machine'])}. {data['devices']:,} enrolled devices, each with a "
        f"signed desired state of 3 plugins; each app server a gunicorn with "
        f"`control_plane/gunicorn_settings.py` ({data['gunicorn_workers']} sync workers), "
        f"all on the same cores; wrk -t{data['wrk']['threads']} "
        f"-c{data['wrk']['connections']} in total (one wrk per app server at once, the "
        f"threads and connections split; latency is the slower server's), "
        f"{data['duration_s']} s per row after a warm-up. Answers: conditional = heartbeats "
        f"report their desired-state sequence, so unchanged answers leave the envelope out; "
        f"full = they do not (a host too old to report it: the envelope every time). "
        f"Errors are non-2xx answers plus socket errors; readings stored counts the rows "
        f"the measured run added (heartbeats times readings, plus the few still in flight "
        f"when wrk stopped counting). Health entries: per-plugin counters (one upsert each); "
        f'"vs 1 server, no health" is the rate over the same run\'s row with one app server, '
        f"no health entries and the same answers. "
        f"CPU in % of one core (200 = both) by command; bench is "
        f"wrk and this script. probe: a fixed Python loop timed just before the row (lower is a "
        f"faster machine; the VM's host can slow it down unseen).\n\n"
        f"{table.markdown()}\n"
    )


if __name__ == "__main__":
    main()
