"""Time from approving a new version to every device of a local fleet serving it.

A control plane (gunicorn, ``gunicorn_timed.conf.py``) and ``--devices`` device hosts in
signed mode on loopback, each device with its own compiled-component directory, so each
really downloads, verifies and compiles. hello 1.0.0 is published to all and awaited; then
hello 2.0.0 is published with ``manage.py publish_plugin --approve`` and assigned with
``manage.py assign_release hello 2.0.0 all``, while every device's ``/plugins/hello/`` is
polled every 50 ms. The split per device comes from what each side leaves behind:

* push: the ``assign_release`` process's log ("new desired state …", then
  "pushed desired state to device … (202)");
* download: a ``.download-*`` file appearing in the device's ``state/agent/artifacts/``
  (watched every 10 ms) to the last write into it (the stored file's mtime); the control
  plane's access log times the same GET from its side;
* verify: from the last write to the start of loading (fsync, size and SHA-256 check,
  rename; the signature was checked before the download);
* compile: the device's "… is serving (…, compiled in N ms)" line: compile and serialise
  (until the ``.cwasm`` appears in its compiled dir), then contract check, instantiate and
  self-check;
* swap: from that line to the first poll answering "hello from version 2".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    REPO,
    WORK,
    CpuMeter,
    Table,
    build_variant,
    component_of,
    cpu_text,
    exit_on_sigterm,
    log_time,
    machine,
    machine_line,
    speed_probe,
    wait_for_quiet,
    write_results,
)

from tests.support import ControlPlaneProcess, HostProcess, _die_with_parent, http_get, wait_until

SEED_DIR = WORK / "device-compiled-seed"
"""Compiled hello 1.0.0 from an earlier run, so only 2.0.0 costs each device a compile."""


@dataclass
class TimedControlPlane(ControlPlaneProcess):
    """The tests' control plane, served with the production gunicorn settings and a timed
    access log, and never with a compiled cache (an approval compiles, as in production)."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("CONTROL_PLANE_COMPILED_CACHE_DIR", None)
        env["CONTROL_PLANE_LOG_LEVEL"] = "INFO"
        return env

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def start(self, timeout: float = 60.0) -> None:
        log = (self.workdir / "control-plane.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "-c", str(REPO / "bench" / "fleet" / "gunicorn_timed.conf.py"),
                "-b", f"127.0.0.1:{self.port}",
                "--access-logfile", str(self.access_log),
                "control_plane.wsgi",
            ],
            env=self.env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        wait_until(
            lambda: _answers(self.url + "/admin/login/"),
            timeout,
            "the control plane",
        )


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False


def signed_host(workdir: Path, control_plane: ControlPlaneProcess, token: str) -> HostProcess:
    """As tests/fleet/conftest.py builds them, but with a compiled dir of its own."""
    host = HostProcess(workdir=workdir, compiled_dir=workdir / "compiled")
    host.settings = {
        "plugins": {"source": "signed"},
        "agent": {
            "control_plane_url": control_plane.url,
            "enrollment_token": token,
            "device_name": workdir.name,
            "agent_url": host.url,
            "trusted_keys_dir": str(control_plane.trusted_keys_dir),
            "heartbeat_interval_s": 1.0,
        },
    }
    return host


@dataclass
class Observed:
    """What the watchers saw of one device, as Unix times."""

    download_started: float | None = None
    stored: float | None = None
    last_write: float | None = None
    compiled: float | None = None
    serving_v2: float | None = None
    polls: int = 0
    poll_errors: int = 0


@dataclass
class Watch:
    devices: list[HostProcess]
    sha256: str
    body: str
    poll_s: float = 0.05
    seen: list[Observed] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.seen = [Observed() for _ in self.devices]
        self._threads = [threading.Thread(target=self._files, daemon=True)]
        self._threads += [
            threading.Thread(target=self._poll, args=(i,), daemon=True)
            for i in range(len(self.devices))
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def done(self) -> bool:
        return all(o.serving_v2 is not None for o in self.seen)

    def _files(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for device, seen in zip(self.devices, self.seen, strict=True):
                artifacts = device.workdir / "state" / "agent" / "artifacts"
                names = _names(artifacts)
                if seen.download_started is None and any(n.startswith(".download-") for n in names):
                    seen.download_started = now
                if seen.stored is None and f"{self.sha256}.wasm" in names:
                    seen.stored = now
                    seen.last_write = (artifacts / f"{self.sha256}.wasm").stat().st_mtime
                if seen.compiled is None and any(
                    n.startswith(self.sha256) and n.endswith(".cwasm")
                    for n in _names(device.compiled_dir)
                ):
                    seen.compiled = now
            time.sleep(0.01)

    def _poll(self, index: int) -> None:
        device, seen = self.devices[index], self.seen[index]
        next_poll = time.monotonic()
        while not self._stop.is_set() and seen.serving_v2 is None:
            seen.polls += 1
            try:
                status, body = http_get(f"{device.url}/plugins/hello/", timeout=5)
                if status == 200 and body == self.body:
                    seen.serving_v2 = time.time()
            except OSError:
                seen.poll_errors += 1
            next_poll += self.poll_s
            time.sleep(max(0.0, next_poll - time.monotonic()))


def _names(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per rollout")
    args = parser.parse_args()

    work = WORK / "delivery"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print("building hello 1.0.0 and 2.0.0")
    v1 = build_variant("hello", "hello-v1")
    v2 = build_variant("hello", "hello-v2", replace={"version 1": "version 2"}, version="2.0.0")
    v1_sha = hashlib.sha256(component_of(v1).read_bytes()).hexdigest()
    v2_sha = hashlib.sha256(component_of(v2).read_bytes()).hexdigest()

    control_plane = TimedControlPlane(work / "control-plane")
    devices: list[HostProcess] = []
    try:
        control_plane.set_up()
        control_plane.start()
        token = control_plane.enrollment_token(uses=args.devices)
        for i in range(args.devices):
            device = signed_host(work / f"pi-{i + 1}", control_plane, token)
            seed_compiled(device, v1_sha)
            devices.append(device)
        print(f"starting {args.devices} device hosts")
        for device in devices:
            device.start()

        print("publishing hello 1.0.0 to all and waiting for every device")
        started = time.monotonic()
        control_plane.manage("publish_plugin", str(v1), "--assign", "all")
        wait_serving(devices, "hello from version 1", args.timeout)
        v1_s = time.monotonic() - started
        keep_compiled(devices[0], v1_sha)

        wait_for_quiet()
        print("publishing hello 2.0.0 (--approve), then assign_release … all")
        probe_ms = speed_probe()
        watch = Watch(devices, v2_sha, "hello from version 2")
        watch.start()
        meter = CpuMeter()
        publish = timed_manage(
            control_plane, work / "publish.log", "publish_plugin", str(v2), "--approve"
        )
        assign = timed_manage(
            control_plane, work / "assign.log", "assign_release", "hello", "2.0.0", "all"
        )
        wait_until(watch.done, args.timeout, "every device serving hello 2.0.0")
        cpu = meter.stop()
        watch.stop()
        time.sleep(3)  # a few more heartbeats for the wire figures
        wire = wire_sizes(control_plane, devices, v2_sha, component_of(v2))
    finally:
        for device in devices:
            device.stop()
        control_plane.stop()

    print("compiling hello 2.0.0 alone, for comparison")
    alone = compile_alone(component_of(v2))
    per_device = [
        phases(device, seen, publish, assign, control_plane, v2_sha)
        for device, seen in zip(devices, watch.seen, strict=True)
    ]
    data = {
        "machine": machine(),
        "devices": args.devices,
        "v1_rollout_s": round(v1_s, 1),
        "publish": publish,
        "assign": assign,
        "per_device": per_device,
        "cpu": cpu,
        "speed_probe_ms": probe_ms,
        "compile_alone": alone,
        "wire": wire,
        "sha256": {"1.0.0": v1_sha, "2.0.0": v2_sha},
    }
    (WORK / "wire-measured.json").write_text(json.dumps(wire, indent=2) + "\n")
    write_results("delivery", data, markdown(data))


def compile_alone(wasm: Path, runs: int = 3) -> dict[str, object]:
    """One compile with the machine to itself: hyperfine for the time, time -v for memory."""
    scratch = WORK / "compile-alone"
    export = WORK / "compile-alone.hyperfine.json"
    command = f"{sys.executable} {REPO / 'bench' / 'fleet' / 'compile_once.py'} {wasm} {scratch}"
    wait_for_quiet()
    meter = CpuMeter()
    subprocess.run(
        ["hyperfine", "--runs", str(runs), "--prepare", f"rm -rf {scratch}",
         "--export-json", str(export), command],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    cpu = meter.stop()
    timing = json.loads(export.read_text())["results"][0]
    shutil.rmtree(scratch, ignore_errors=True)
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command.split()],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    inside = re.search(r"compiled in (\d+) ms", done.stdout)
    cpu_s = sum(
        float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", done.stderr)
    )
    return {
        "runs": runs,
        "process_mean_s": round(timing["mean"], 2),
        "process_min_s": round(timing["min"], 2),
        "process_max_s": round(timing["max"], 2),
        "compile_ms": int(inside.group(1)) if inside else None,
        "max_rss_mib": round(int(rss.group(1)) / 1024) if rss else None,
        "cpu_s": round(cpu_s, 1),
        "others_pct": cpu["others_pct"],
    }


def seed_compiled(device: HostProcess, sha256: str) -> None:
    device.compiled_dir.mkdir(parents=True, exist_ok=True)
    for cached in SEED_DIR.glob(f"{sha256}-*.cwasm"):
        os.link(cached, device.compiled_dir / cached.name)


def keep_compiled(device: HostProcess, sha256: str) -> None:
    SEED_DIR.mkdir(parents=True, exist_ok=True)
    for compiled in device.compiled_dir.glob(f"{sha256}-*.cwasm"):
        if not (SEED_DIR / compiled.name).exists():
            shutil.copy2(compiled, SEED_DIR / compiled.name)


def wait_serving(devices: list[HostProcess], body: str, timeout: float) -> None:
    for device in devices:
        wait_until(
            lambda d=device: http_get(f"{d.url}/plugins/hello/")[1] == body,
            timeout,
            f"{body!r} on {device.url}",
        )


def timed_manage(control_plane: ControlPlaneProcess, log: Path, *args: str) -> dict[str, object]:
    """Runs a management command under /usr/bin/time -v; keeps its log lines with times."""
    command = [
        "/usr/bin/time", "-v", sys.executable, str(REPO / "control_plane" / "manage.py"), *args,
    ]  # fmt: skip
    started = time.time()
    done = subprocess.run(
        command, env=control_plane.env(), capture_output=True, text=True, timeout=600
    )
    ended = time.time()
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"bench: manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return {
        "command": " ".join(args),
        "started": started,
        "ended": ended,
        "seconds": round(ended - started, 3),
        "max_rss_mib": round(int(rss.group(1)) / 1024) if rss else None,
        "lines": [line for line in done.stderr.splitlines() if log_time(line) is not None],
    }


def phases(
    device: HostProcess,
    seen: Observed,
    publish: dict[str, object],
    assign: dict[str, object],
    control_plane: ControlPlaneProcess,
    sha256: str,
) -> dict[str, object]:
    name = device.workdir.name
    lines: list[str] = assign["lines"]  # type: ignore[assignment]
    desired = next((log_time(x) for x in lines if "new desired state" in x), None)
    pushed = next(
        (log_time(x) for x in lines if f"pushed desired state to device {name} " in x), None
    )
    serving, load_ms, installed, from_cache = None, None, None, None
    for line in device.log().splitlines():
        match = re.search(r"hello 2\.0\.0 is serving \(sha256 \w+, (.*) in (\d+) ms\)", line)
        if match:
            serving, load_ms, from_cache = log_time(line), int(match.group(2)), match.group(1)
        if "installed hello 2.0.0" in line:
            installed = log_time(line)
    server_download = artifact_request(control_plane, device, sha256)
    heartbeat_first = False
    if server_download is not None and server_download["heartbeat_before"] is not None:
        beat = float(server_download["heartbeat_before"])  # type: ignore[arg-type]
        started = float(server_download["start"])  # type: ignore[arg-type]
        heartbeat_first = started - beat < 0.05 and (pushed is None or beat < pushed)
    load_start = serving - load_ms / 1000 if serving is not None and load_ms is not None else None

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round((b - a) * 1000)

    return {
        "device": name,
        "trigger": "heartbeat" if heartbeat_first else "push",
        "assign_ms": span(float(assign["started"]), desired),  # type: ignore[arg-type]
        "push_ms": span(desired, pushed),
        "wait_ms": span(pushed, seen.download_started),
        "download_ms": span(seen.download_started, seen.last_write),
        # gunicorn hands the file to sendfile(): its log ends when the kernel took the bytes.
        "server_sendfile_ms": server_download["ms"] if server_download else None,
        "verify_ms": span(seen.last_write, load_start),
        "compile_ms": load_ms,
        "compile_to_disk_ms": span(load_start, seen.compiled),
        "check_instantiate_ms": span(seen.compiled, serving),
        "from_cache": from_cache,
        "swap_ms": span(serving, seen.serving_v2),
        "installed_logged_after_ms": span(serving, installed),
        "from_assign_ms": span(float(assign["started"]), seen.serving_v2),  # type: ignore[arg-type]
        "from_approval_ms": span(float(publish["started"]), seen.serving_v2),  # type: ignore[arg-type]
        "polls": seen.polls,
        "poll_errors": seen.poll_errors,
    }


def _device_token(device: HostProcess) -> str:
    state = json.loads((device.workdir / "state" / "agent" / "agent.json").read_text())
    return str(state["device_token"])


def _access(control_plane: TimedControlPlane) -> list[dict[str, object]]:
    pattern = re.compile(
        r'^(?P<end>[\d.]+) (?P<us>\d+) "(?P<method>\w+) (?P<path>\S+)" (?P<status>\d+) '
        r"(?P<bytes>\S+) in=(?P<length>\S+) auth=(?:Bearer )?(?P<token>\S+)"
    )
    entries = []
    for line in control_plane.access_log.read_text().splitlines():
        match = pattern.match(line)
        if match:
            entry: dict[str, object] = match.groupdict()
            entry["end"] = float(match["end"])
            entry["start"] = entry["end"] - int(match["us"]) / 1e6  # type: ignore[operator]
            entries.append(entry)
    return entries


def artifact_request(
    control_plane: ControlPlaneProcess, device: HostProcess, sha256: str
) -> dict[str, object] | None:
    """The device's GET of the artifact as the control plane logged it."""
    assert isinstance(control_plane, TimedControlPlane)
    token = _device_token(device)
    entries = [e for e in _access(control_plane) if e["token"] == token]
    get = next((e for e in entries if e["path"] == f"/api/v1/artifacts/{sha256}"), None)
    if get is None:
        return None
    heartbeats = [
        e
        for e in entries
        if e["path"] == "/api/v1/heartbeat" and float(e["end"]) < float(get["start"])  # type: ignore[arg-type]
    ]
    return {
        "start": get["start"],
        "ms": round((float(get["end"]) - float(get["start"])) * 1000),  # type: ignore[arg-type]
        "bytes": int(str(get["bytes"])),
        "heartbeat_before": heartbeats[-1]["end"] if heartbeats else None,
    }


def wire_sizes(
    control_plane: TimedControlPlane, devices: list[HostProcess], sha256: str, wasm: Path
) -> dict[str, object]:
    """Bytes of an update and of a heartbeat as they really crossed the wire."""
    token = _device_token(devices[0])
    done = subprocess.run(
        [
            "curl", "-s", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}",
            "-w", "%{http_code} %{size_request} %{size_header} %{size_download}",
            f"{control_plane.url}/api/v1/artifacts/{sha256}",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status, request, headers, body = map(int, done.stdout.split())
    assert status == 200, done.stdout
    code = (
        "from control_plane.devices.models import Device; import json; "
        "print(json.dumps([len(d.desired_envelope.encode()) for d in Device.objects.all()]))"
    )
    envelopes = json.loads(control_plane.manage("shell", "-c", code).strip().splitlines()[-1])
    beats = [
        e
        for e in _access(control_plane)
        if e["path"] == "/api/v1/heartbeat" and e["status"] == "200"
    ][-5 * len(devices) :]
    return {
        "raw_component_bytes": wasm.stat().st_size,
        "artifact_body_bytes": body,
        "artifact_headers_bytes": request + headers,
        "stored_artifact_bytes": (control_plane.artifact_root / f"{sha256}.wasm.zst")
        .stat()
        .st_size,
        "push_body_bytes": max(envelopes),
        "heartbeat_request_body_bytes": statistics.median(int(str(e["length"])) for e in beats),
        "heartbeat_answer_body_bytes": statistics.median(int(str(e["bytes"])) for e in beats),
        "heartbeats_sampled": len(beats),
    }


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    def ms(value: object) -> str:
        return "?" if value is None else f"{int(value):,}"  # type: ignore[call-overload]

    rows = [
        [
            d["device"], d["trigger"], ms(d["assign_ms"]), ms(d["push_ms"]), ms(d["wait_ms"]),
            ms(d["download_ms"]), ms(d["verify_ms"]),
            f"{ms(d['compile_ms'])} = {ms(d['compile_to_disk_ms'])} + "
            f"{ms(d['check_instantiate_ms'])}",
            ms(d["swap_ms"]), ms(d["from_assign_ms"]), ms(d["from_approval_ms"]),
        ]
        for d in data["per_device"]
    ]  # fmt: skip
    table = Table(
        [
            "device", "trigger", "assign", "push", "wait", "download", "verify",
            "compile = to disk + check/instantiate", "swap", "assign→serving",
            "approval→serving",
        ],
        rows,
    )  # fmt: skip
    publish, assign, alone = data["publish"], data["assign"], data["compile_alone"]
    totals = [d["from_approval_ms"] for d in data["per_device"] if d["from_approval_ms"]]
    after_assign = [d["from_assign_ms"] for d in data["per_device"] if d["from_assign_ms"]]
    return (
        f"### Approval to every device serving, {data['devices']} device hosts\n\n"
        f"{machine_line(data['machine'])}. One control plane and {data['devices']} device "
        f"hosts (signed mode, each its own compiled dir) on loopback, all on these "
        f"{data['machine']['cores']} cores. hello 1.0.0 was rolled out first "
        f"({data['v1_rollout_s']} s); then:\n\n"
        f"* `manage.py publish_plugin hello-v2 --approve`: {publish['seconds']:.1f} s "
        f"(upload checks compile the component; peak RSS {publish['max_rss_mib']} MiB)\n"
        f"* `manage.py assign_release hello 2.0.0 all`: {assign['seconds']:.1f} s "
        f"(peak RSS {assign['max_rss_mib']} MiB; it also sends the pushes)\n"
        f"* every device serving 2.0.0: {max(after_assign) / 1000:.1f} s after the assignment "
        f"started (first {min(after_assign) / 1000:.1f} s), "
        f"{max(totals) / 1000:.1f} s after the approval started\n"
        f"* one compile of hello 2.0.0 alone (hyperfine, {alone['runs']} runs, whole process): "
        f"{alone['process_mean_s']} s (min {alone['process_min_s']}, max "
        f"{alone['process_max_s']}); inside the process {alone['compile_ms']:,} ms; "
        f"CPU {alone['cpu_s']} s, peak RSS {alone['max_rss_mib']} MiB (/usr/bin/time -v); "
        f"other work used {alone['others_pct']:.0f} % of a core meanwhile\n"
        f"* CPU from approval to the last device serving, % of one core: "
        f"{cpu_text(data['cpu'])}; speed probe before it {data['speed_probe_ms']} ms (a fixed "
        f"Python loop, see the heartbeat section)\n\n"
        f"Milliseconds per device. assign: command start (Django start-up included) → new "
        f"desired state signed; push: → 202 from the device; wait: 202 → download starts "
        f"(trigger says whether a heartbeat answer got there first); download: first to last "
        f"byte written on the device (zstd-decoded and hashed as it streams); verify: "
        f"last byte written → load starts; compile: the device's own figure, split at the "
        f"compiled file's appearance; swap: serving line → first poll (every 50 ms) that "
        f"answers version 2 (the line is logged just after the swap, so under load a poll "
        f"can beat it and the figure goes negative). The {data['devices']} devices compile at "
        f"once on {data['machine']['cores']} cores, so each compile is slower than one alone.\n\n"
        f"{table.markdown()}\n"
    )


if __name__ == "__main__":
    main()
