"""Time from approving a new version to every device of a local fleet serving it, told by a
notice over MQTT, against heartbeats alone, in the same run.

A control plane (gunicorn with ``gunicorn_timed.conf.py`` and its job worker, ``manage.py
qcluster``), a Mosquitto over TLS configured by the broker role's templates
(``tests/servers_mqtt.py``: its own server CA, clients' certificates from the control plane's
device CA, ``manage.py create_device_ca``) and ``--devices`` device hosts in signed mode on
loopback, each with a compiled cache of its own and ``[agent] ca_file`` = the broker's server
CA, so each gets its MQTT client certificate at enrollment and subscribes to its own topic.
Devices and control plane use the same heartbeat interval (``--heartbeat-interval``, 10 s
as in production). hello 1.0.0 is rolled out first; then, while every device's
``/plugins/hello/`` is polled every 50 ms, two versions are published as ``scripts/publish``
does (``manage.py publish_plugin <folder> --assign all``: upload, wait for the background
check, approve and sign, assign):

* **notice**: hello 2.0.0. The worker writes the desired states and their outbox rows in one
  transaction, then publishes "desired state N is ready" (QoS 1, retained); each device's
  notice makes its next heartbeat due now, and that heartbeat's answer carries the envelope.
* **heartbeat** (the baseline): the broker is stopped and the control plane restarted
  without ``CONTROL_PLANE_MQTT_URL``; hello 3.0.0 reaches the devices with their next
  regular heartbeat (what a fleet without the channel, or with the broker down, gets).

Both ship the worker's compiled x86_64 artifact, so the devices only deserialize it. The
split comes from what each side leaves behind, without touching the code it measures:

* upload, sign: the publish command's log ("uploaded …", "approved … signed");
* queue wait and check: the worker's log ("processing check …", "checked …"); each
  class's compile time and peak RSS from its ``CompiledArtifact`` row;
* desired states written: the first "new desired state for N device(s)" line after the
  command started (worker or command log); notice published: the device's outbox row's
  ``published_at`` (set once the broker acknowledged it: PUBACK);
* fetch: from the notice published (heartbeat: from the desired state written) to the
  download file's birth: the notice on the wire, the early heartbeat and its answer
  (heartbeat: the wait for the next regular heartbeat);
* download: the compiled artifact in the device's compiled cache, from its birth time (the
  ``.download-*`` file is renamed, so it is the same inode) to its last write (mtime);
* verify: from the last write to the start of the load (fsync, size and SHA-256, rename);
* load: the device's "… is serving (sha256 …, delivered compiled artifact in N ms)":
  deserialize, contract check, instantiate and self-check;
* swap: from that line to the first poll answering the new version.
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

from fleet_common.manifest import load_manifest
from tests.servers_mqtt import Mosquitto
from tests.support import ControlPlaneProcess, HostProcess, die_with_parent, http_get, wait_until

CHANNELS = ("notice", "heartbeat")
MODES = ("delivered", "baseline")
"""How the other benches install: the worker's compiled artifact, or every device compiling."""
NATIVE_CLASS = "x86_64"
HEARTBEAT_INTERVAL_S = 10.0
"""The production default, on the device and the control plane alike."""


@dataclass
class TimedControlPlane(ControlPlaneProcess):
    """The tests' control plane, served with the production gunicorn settings and a timed
    access log, never with a compiled cache (every version compiles, as in production),
    with a device CA and a broker: ``set_channel("heartbeat")`` stops the broker and
    restarts the application without it."""

    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    broker: Mosquitto | None = None
    notices: bool = True
    """Whether the application is told about the broker (``CONTROL_PLANE_MQTT_URL``)."""

    @property
    def device_ca_cert(self) -> Path:
        return self.workdir / "device-ca.pem"

    @property
    def ca_bundle(self) -> Path:
        """What devices pin: the broker's server CA (the control plane is loopback HTTP)."""
        return self.workdir / "broker" / "broker-ca.pem"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("CONTROL_PLANE_COMPILED_CACHE_DIR", None)
        env["CONTROL_PLANE_LOG_LEVEL"] = "INFO"
        env["CONTROL_PLANE_HEARTBEAT_INTERVAL_S"] = str(self.heartbeat_interval_s)
        env["CONTROL_PLANE_DEVICE_CA_CERT_PATH"] = str(self.device_ca_cert)
        env["CONTROL_PLANE_DEVICE_CA_KEY_PATH"] = str(self.workdir / "device-ca-key.pem")
        if self.notices and self.broker is not None:
            env["CONTROL_PLANE_MQTT_URL"] = self.broker.url
            env["CONTROL_PLANE_MQTT_CA_FILE"] = str(self.broker.server_ca_file)
        return env

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def set_up(self) -> None:
        super().set_up()
        self.manage("create_device_ca")
        broker_dir = self.workdir / "broker"
        broker_dir.mkdir(exist_ok=True)
        self.broker = Mosquitto(broker_dir, device_ca_file=self.device_ca_cert)

    def start(self, timeout: float = 60.0) -> None:
        if self.notices and self.broker is not None:
            self.broker.start()
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
            preexec_fn=die_with_parent,
        )  # fmt: skip
        wait_until(lambda: _answers(self.url + "/admin/login/"), timeout, "the control plane")
        self.start_worker()

    def set_channel(self, channel: str) -> None:
        """notice: the broker up and the application publishing to it; heartbeat: the
        broker stopped and the application restarted without it."""
        wanted = channel == "notice"
        if wanted != self.notices:
            self.stop()
            self.notices = wanted
            self.start()

    def set_mode(self, mode: str) -> None:
        """delivered: the native class compiles each upload; baseline: it does not, so no
        artifact matches an x86_64 device and it compiles for itself."""
        switch = "--enable" if mode == "delivered" else "--disable"
        self.manage("device_class", NATIVE_CLASS, switch)

    def stop(self) -> None:
        """Stops the application and the broker."""
        super().stop()
        if self.broker is not None:
            self.broker.stop()


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False


def signed_host(workdir: Path, control_plane: TimedControlPlane, token: str) -> HostProcess:
    """As tests/fleet/conftest.py builds them (its own compiled cache), pinning the broker's
    CA for the notice channel, on the control plane's heartbeat interval."""
    host = HostProcess(workdir=workdir, compiled_dir=workdir / "compiled")
    host.settings = {
        "plugins": {"source": "signed"},
        "agent": {
            "control_plane_url": control_plane.url,
            "enrollment_token": token,
            "device_name": workdir.name,
            "ca_file": str(control_plane.ca_bundle),
            "trusted_keys_dir": str(control_plane.trusted_keys_dir),
            "heartbeat_interval_s": control_plane.heartbeat_interval_s,
            "compile_locally": True,
        },
    }
    return host


def channels_connected(devices: list[HostProcess]) -> bool:
    """Whether every device's notice channel is subscribed (its ``/healthz`` says so)."""
    return all(
        device.healthz()["agent"]["channel"]["state"] == "connected"  # type: ignore[index]
        for device in devices
    )


@dataclass
class Pollers:
    """A thread per device asking ``path`` every ``poll_s`` until the answer holds ``marker``."""

    devices: list[HostProcess]
    path: str
    marker: str
    poll_s: float = 0.05
    serving: list[float | None] = field(default_factory=list)
    polls: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        count = len(self.devices)
        self.serving, self.polls, self.errors = [None] * count, [0] * count, [0] * count
        self._threads = [
            threading.Thread(target=self._poll, args=(i,), daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def done(self) -> bool:
        return all(when is not None for when in self.serving)

    def _poll(self, index: int) -> None:
        url = self.devices[index].url + self.path
        next_poll = time.monotonic()
        while not self._stop.is_set() and self.serving[index] is None:
            self.polls[index] += 1
            try:
                status, body = http_get(url, timeout=5)
                if status == 200 and self.marker in body:
                    self.serving[index] = time.time()
            except OSError:
                self.errors[index] += 1
            next_poll += self.poll_s
            time.sleep(max(0.0, next_poll - time.monotonic()))


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=5)
    parser.add_argument(
        "--heartbeat-interval", type=float, default=HEARTBEAT_INTERVAL_S, help="seconds"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per rollout")
    args = parser.parse_args()

    work = WORK / "delivery"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print("building hello 1.0.0, 2.0.0 and 3.0.0")
    v1 = build_variant("hello", "hello-v1")
    versions = {
        "notice": build_variant(
            "hello", "hello-v2", replace={"version 1": "version 2"}, version="2.0.0"
        ),
        "heartbeat": build_variant(
            "hello", "hello-v3", replace={"version 1": "version 3"}, version="3.0.0"
        ),
    }
    markers = {"notice": "hello from version 2", "heartbeat": "hello from version 3"}

    control_plane = TimedControlPlane(
        work / "control-plane", heartbeat_interval_s=args.heartbeat_interval
    )
    devices: list[HostProcess] = []
    runs: dict[str, dict[str, object]] = {}
    try:
        control_plane.set_up()
        control_plane.start()
        token = control_plane.enrollment_token(uses=args.devices)
        devices = [
            signed_host(work / f"pi-{i + 1}", control_plane, token) for i in range(args.devices)
        ]
        print(f"starting {args.devices} device hosts")
        for device in devices:
            device.start()

        print("rolling out hello 1.0.0 and waiting for every device")
        started = time.monotonic()
        control_plane.manage("publish_plugin", str(v1), "--assign", "all")
        pollers = Pollers(devices, "/plugins/hello/", "hello from version 1")
        pollers.start()
        wait_until(pollers.done, args.timeout, "every device serving hello 1.0.0")
        pollers.stop()
        v1_s = time.monotonic() - started
        wait_until(lambda: channels_connected(devices), 120, "every notice channel connected")

        for mode in CHANNELS:
            control_plane.set_channel(mode)
            print(f"{mode}: publishing {versions[mode].name} --assign all")
            runs[mode] = roll_out(
                control_plane, devices, versions[mode], mode, "/plugins/hello/",
                markers[mode], work, args.timeout,
            )  # fmt: skip
        time.sleep(2 * args.heartbeat_interval)  # unchanged heartbeats for the wire figures
        wire = wire_sizes(control_plane, devices, runs["heartbeat"])
    finally:
        for device in devices:
            device.stop()
        control_plane.stop()

    data = {
        "machine": machine(),
        "load_before": os.getloadavg(),
        "devices": args.devices,
        "heartbeat_interval_s": args.heartbeat_interval,
        "v1_rollout_s": round(v1_s, 1),
        "runs": runs,
        "wire": wire,
    }
    (WORK / "wire-measured.json").write_text(json.dumps(wire, indent=2) + "\n")
    write_results("delivery", data, markdown(data))


def roll_out(
    control_plane: TimedControlPlane,
    devices: list[HostProcess],
    folder: Path,
    mode: str,
    path: str,
    marker: str,
    work: Path,
    timeout: float,
) -> dict[str, object]:
    """Publishes ``folder`` with ``--assign all`` and times it to every device serving it."""
    manifest = load_manifest(folder / "manifest.toml")
    sha256 = hashlib.sha256(component_of(folder).read_bytes()).hexdigest()
    wait_for_quiet()
    load = os.getloadavg()[0]
    probe_ms = speed_probe()
    pollers = Pollers(devices, path, marker)
    pollers.start()
    meter = CpuMeter()
    publish = timed_manage(
        control_plane, work / f"publish-{mode}.log", "publish_plugin", str(folder),
        "--assign", "all",
    )  # fmt: skip
    try:
        wait_until(pollers.done, timeout, f"every device serving {manifest.label}")
    finally:
        pollers.stop()
    cpu = meter.stop()
    label = f"{manifest.name} {manifest.version}"
    worker = worker_times(control_plane, label, float(publish["started"]))  # type: ignore[arg-type]
    rows = artifact_rows(control_plane, manifest.name, manifest.version)
    published = notices_published(control_plane) if mode == "notice" else {}
    lines: list[str] = publish["lines"]  # type: ignore[assignment]
    steps = {
        "started": publish["started"],
        "uploaded": _first(lines, f"uploaded {label} "),
        "check_started": worker["check_started"],
        "checked": worker["checked"],
        "approved": _first(lines, f"approved {label} "),
        "desired": _first(lines, "new desired state for") or worker["desired"],
    }
    per_device = [
        device_phases(device, index, pollers, steps, published, label, sha256)
        for index, device in enumerate(devices)
    ]
    return {
        "mode": mode,
        "plugin": label,
        "sha256": sha256,
        "component_bytes": component_of(folder).stat().st_size,
        "publish": {k: v for k, v in publish.items() if k != "lines"},
        "steps": steps,
        "artifacts": rows,
        "per_device": per_device,
        "cpu": cpu,
        "load_1min": load,
        "speed_probe_ms": probe_ms,
    }


def _first(lines: list[str], text: str) -> float | None:
    return next((log_time(line) for line in lines if text in line), None)


def worker_times(
    control_plane: ControlPlaneProcess, label: str, since: float = 0.0
) -> dict[str, float | None]:
    """When the worker started the version's check, recorded its verdict, and (after
    ``since``) first wrote new desired states."""
    lines = [line for line in control_plane.worker_log().splitlines() if log_time(line)]
    later = [line for line in lines if (log_time(line) or 0.0) >= since]
    return {
        "check_started": _first(lines, f"processing check {label} "),
        "checked": _first(lines, f"checked {label}: "),
        "desired": _first(later, "new desired state for"),
    }


NOTICE_QUERY = """
from control_plane.notices.models import DesiredNotice
result = {
    n.device.name: [n.published_at and n.published_at.timestamp(), n.published_sequence,
                    n.sequence]
    for n in DesiredNotice.objects.select_related("device")
}
"""


def notices_published(control_plane: ControlPlaneProcess) -> dict[str, float | None]:
    """Per device name, when the broker acknowledged its newest notice (None: pending)."""
    rows = control_plane.shell(NOTICE_QUERY)
    return {name: (at if done >= wanted else None) for name, (at, done, wanted) in rows.items()}


ARTIFACT_QUERY = """
import json
from control_plane.plugins.models import PluginVersion
v = PluginVersion.objects.get(plugin__name={name!r}, version={version!r})
def t(x):
    return None if x is None else x.timestamp()
print(json.dumps([
    {{"class": a.device_class.name, "state": a.state, "queued_at": t(a.queued_at),
      "started_at": t(a.started_at), "finished_at": t(a.finished_at),
      "compile_seconds": a.compile_seconds, "peak_rss_mib": a.peak_rss_mib,
      "size": a.size, "compressed_size": a.compressed_size, "sha256": a.sha256,
      "signed": a.envelope is not None}}
    for a in v.artifacts.select_related("device_class")
]))
"""


def artifact_rows(control_plane: ControlPlaneProcess, name: str, version: str) -> list[dict]:  # type: ignore[type-arg]
    """The version's ``CompiledArtifact`` rows: one per class it was compiled for."""
    output = control_plane.manage("shell", "-c", ARTIFACT_QUERY.format(name=name, version=version))
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _birth_and_mtime(path: Path) -> tuple[float, float] | None:
    """The file's birth and last-write times: a download is written to a ``.download-*``
    file and renamed, so its birth is the download's start and its mtime the last byte."""
    done = subprocess.run(
        ["stat", "-c", "%.9W %.9Y", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    birth, mtime = map(float, done.stdout.split())
    return (birth, mtime) if birth > 0 else None


def _compiled_file(device: HostProcess, sha256: str) -> Path | None:
    found = sorted(device.compiled_dir.glob(f"{sha256}-*.cwasm"))
    return found[0] if found else None


def device_phases(
    device: HostProcess,
    index: int,
    pollers: Pollers,
    steps: dict[str, object],
    published: dict[str, float | None],
    label: str,
    sha256: str,
) -> dict[str, object]:
    name = device.workdir.name
    serving, load_ms, how = None, None, None
    pattern = re.compile(rf"{re.escape(label)} is serving \(sha256 \w+, (.*) in (\d+) ms\)")
    for line in device.log().splitlines():
        match = pattern.search(line)
        if match:
            serving, how, load_ms = log_time(line), match.group(1), int(match.group(2))
    compiled = _compiled_file(device, sha256)
    downloaded = _birth_and_mtime(compiled) if compiled is not None else None
    load_start = serving - load_ms / 1000 if serving is not None and load_ms is not None else None
    noticed = published.get(name)
    seen = pollers.serving[index]

    def span(a: object, b: object) -> int | None:
        return None if a is None or b is None else round((float(b) - float(a)) * 1000)  # type: ignore[arg-type]

    return {
        "device": name,
        "how": how,
        "notice_ms": span(steps["desired"], noticed),
        "fetch_ms": span(noticed or steps["desired"], downloaded and downloaded[0]),
        "download_ms": span(downloaded and downloaded[0], downloaded and downloaded[1]),
        "verify_ms": span(downloaded and downloaded[1], load_start),
        "load_ms": load_ms,
        "swap_ms": span(serving, seen),
        "from_desired_ms": span(steps["desired"], seen),
        "from_approval_ms": span(steps["checked"], seen),
        "from_upload_ms": span(steps["started"], seen),
        "polls": pollers.polls[index],
        "poll_errors": pollers.errors[index],
    }


def timed_manage(control_plane: ControlPlaneProcess, log: Path, *args: str) -> dict[str, object]:
    """Runs a management command under /usr/bin/time -v; keeps its log lines with times."""
    command = [
        "/usr/bin/time", "-v", sys.executable, str(REPO / "control_plane" / "manage.py"), *args,
    ]  # fmt: skip
    started = time.time()
    done = subprocess.run(
        command, env=control_plane.env(), capture_output=True, text=True, timeout=900
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
            entries.append(dict(match.groupdict()))
    return entries


def _download_bytes(control_plane: TimedControlPlane, token: str, path: str) -> tuple[int, int]:
    """(body, request + answer headers) of one GET as a device sends it."""
    done = subprocess.run(
        [
            "curl", "-s", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}",
            "-w", "%{http_code} %{size_request} %{size_header} %{size_download}",
            f"{control_plane.url}{path}",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status, request, headers, body = map(int, done.stdout.split())
    assert status == 200, done.stdout
    return body, request + headers


def wire_sizes(
    control_plane: TimedControlPlane,
    devices: list[HostProcess],
    run: dict[str, object],
) -> dict[str, object]:
    """Bytes of an update (the component and the compiled artifact of ``run``'s version, which
    the devices' desired state names) and of an unchanged heartbeat."""
    token = _device_token(devices[0])
    body, headers = _download_bytes(control_plane, token, f"/api/v1/artifacts/{run['sha256']}")
    artifacts: list[dict] = run["artifacts"]  # type: ignore[assignment,type-arg]
    native = next(a for a in artifacts if a["class"] == NATIVE_CLASS)
    compiled_body, compiled_headers = _download_bytes(
        control_plane, token, f"/api/v1/compiled/{native['sha256']}"
    )
    envelopes = control_plane.shell(
        "from control_plane.devices.models import Device\n"
        "result = [len(d.desired_envelope.encode()) for d in Device.objects.all()]"
    )
    beats = [
        e
        for e in _access(control_plane)
        if e["path"] == "/api/v1/heartbeat" and e["status"] == "200"
    ][-len(devices) :]
    return {
        "raw_component_bytes": run["component_bytes"],
        "artifact_body_bytes": body,
        "artifact_headers_bytes": headers,
        "compiled_raw_bytes": native["size"],
        "compiled_body_bytes": compiled_body,
        "compiled_headers_bytes": compiled_headers,
        "envelope_bytes": max(envelopes),
        "heartbeat_request_body_bytes": statistics.median(int(str(e["length"])) for e in beats),
        "heartbeat_answer_body_bytes": statistics.median(int(str(e["bytes"])) for e in beats),
        "heartbeats_sampled": len(beats),
    }


# --- results ----------------------------------------------------------------------------------


def ms(value: object) -> str:
    return "?" if value is None else f"{int(value):,}"  # type: ignore[call-overload]


def ms_or_dash(value: object) -> str:
    """A step that did not happen in this mode (no notice without a broker)."""
    return "-" if value is None else ms(value)


def _median(values: list[object]) -> float | None:
    known = [float(v) for v in values if v is not None]  # type: ignore[arg-type]
    return statistics.median(known) if known else None


def _span(steps: dict[str, object], a: str, b: str) -> int | None:
    if steps.get(a) is None or steps.get(b) is None:
        return None
    return round((float(steps[b]) - float(steps[a])) * 1000)  # type: ignore[arg-type]


def _last(devices: list[dict], key: str) -> int | None:  # type: ignore[type-arg]
    """The slowest device's figure; None unless every device has one."""
    known = [d[key] for d in devices if d[key] is not None]
    return max(known) if known and len(known) == len(devices) else None


def step_rows(run: dict) -> dict[str, float | None]:  # type: ignore[type-arg]
    """One rollout as named steps in ms (per-device steps as medians over the devices)."""
    steps, devices = run["steps"], run["per_device"]
    native = [a for a in run["artifacts"] if a["class"] == NATIVE_CLASS]
    return {
        "upload (command start → stored)": _span(steps, "started", "uploaded"),
        "queue wait (stored → worker starts the check)": _span(steps, "uploaded", "check_started"),
        "check = native compile in a child (x86_64 artifact kept)": _span(
            steps, "check_started", "checked"
        ),
        "  of it: the x86_64 artifact's compile_seconds": (
            native[0]["compile_seconds"] * 1000 if native and native[0]["compile_seconds"] else None
        ),
        "sign (checked → approved, release + artifacts signed)": _span(
            steps, "checked", "approved"
        ),
        "assign (approved → new desired states written)": _span(steps, "approved", "desired"),
        "notice (written → broker's PUBACK), median": _median([d["notice_ms"] for d in devices]),
        "fetch (→ download starts), median": _median([d["fetch_ms"] for d in devices]),
        "download, median": _median([d["download_ms"] for d in devices]),
        "verify, median": _median([d["verify_ms"] for d in devices]),
        "deserialize + check + instantiate + self-check, median": _median(
            [d["load_ms"] for d in devices]
        ),
        "swap (serving line → first poll), median": _median([d["swap_ms"] for d in devices]),
        "desired states written → last device serving": _last(devices, "from_desired_ms"),
        "**approval (checked) → last device serving**": _last(devices, "from_approval_ms"),
        "**publish command start → last device serving**": _last(devices, "from_upload_ms"),
    }


def comparison(runs: dict) -> Table:  # type: ignore[type-arg]
    notice, heartbeat = step_rows(runs["notice"]), step_rows(runs["heartbeat"])
    rows = []
    for name, value in notice.items():
        other = heartbeat[name]
        ratio = f"{other / value:.1f}x" if value and other and name.startswith("**") else ""
        rows.append([name, ms_or_dash(value), ms_or_dash(other), ratio])
    return Table(["step (ms)", "notice", "heartbeat only", "heartbeat / notice"], rows)


def device_table(run: dict) -> Table:  # type: ignore[type-arg]
    rows = [
        [
            d["device"], ms_or_dash(d["notice_ms"]), ms(d["fetch_ms"]), ms(d["download_ms"]),
            ms(d["verify_ms"]), ms(d["load_ms"]), ms(d["swap_ms"]), ms(d["from_desired_ms"]),
            ms(d["from_approval_ms"]),
        ]
        for d in run["per_device"]
    ]  # fmt: skip
    return Table(
        [
            "device", "notice", "fetch", "download", "verify", "load + self-check", "swap",
            "written→serving", "approval→serving",
        ],
        rows,
    )  # fmt: skip


def run_notes(run: dict) -> str:  # type: ignore[type-arg]
    publish = run["publish"]
    classes = (
        ", ".join(
            f"{a['class']} {a['state']} ({a['compile_seconds']} s, peak {a['peak_rss_mib']} MiB, "
            f"{a['size'] or 0:,} bytes, {a['compressed_size'] or 0:,} zstd)"
            for a in run["artifacts"]
        )
        or "none"
    )
    return (
        f"`publish_plugin {run['plugin']} --assign all`: {publish['seconds']:.1f} s, peak RSS "
        f"{publish['max_rss_mib']} MiB; compiled artifacts: {classes}; CPU from the command "
        f"start to the last device serving (% of one core): {cpu_text(run['cpu'])}; load "
        f"average {run['load_1min']:.1f}; speed probe {run['speed_probe_ms']} ms"
    )


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    runs, wire = data["runs"], data["wire"]
    return (
        f"### Approval to every device serving, {data['devices']} device hosts: notice vs "
        f"heartbeat only\n\n"
        f"{machine_line(data['machine'])}. One control plane (gunicorn + job worker), "
        f"Mosquitto over TLS (client certificates from the device CA) and {data['devices']} "
        f"device hosts (signed mode, each its own compiled cache) on loopback, all on these "
        f"{data['machine']['cores']} cores; heartbeat interval {data['heartbeat_interval_s']:g} "
        f"s on both sides. hello 1.0.0 was rolled out first ({data['v1_rollout_s']} s); then "
        f"`publish_plugin <folder> --assign all` of hello 2.0.0 with the broker (notice: the "
        f"worker publishes, each device's next heartbeat is due at once) and of hello 3.0.0 "
        f"with the broker stopped and the control plane restarted without it (heartbeat only: "
        f"devices learn at their next regular heartbeat). Both deliver the worker's compiled "
        f"artifact.\n\n"
        f"* notice: {run_notes(runs['notice'])}\n"
        f"* heartbeat only: {run_notes(runs['heartbeat'])}\n"
        f"* an unchanged heartbeat: {wire['heartbeat_request_body_bytes']:,.0f} bytes up, "
        f"{wire['heartbeat_answer_body_bytes']:,.0f} bytes down (bodies, median of the last "
        f"{wire['heartbeats_sampled']}); the envelope when changed: "
        f"{wire['envelope_bytes']:,} bytes\n\n"
        f'"approval" is the moment the check\'s verdict was recorded (the earliest an '
        f"approver can approve; `publish_plugin` approves within 0.1 s of it). Per device: "
        f"notice: desired states written → the broker acknowledged the device's notice "
        f"(`published_at`); fetch: → the download file created (the notice delivered, the "
        f"early heartbeat and its answer with the envelope; heartbeat only: from the write, "
        f"the wait for the next heartbeat); download: → its last write; verify: → the load "
        f"starts; load: the device's own figure; swap: serving line → first poll (every 50 "
        f"ms) answering the new version (the line is logged just after the swap, so a poll "
        f"can beat it and the figure goes negative).\n\n"
        f"{comparison(runs).markdown()}\n\n"
        f"Per device, notice (ms):\n\n{device_table(runs['notice']).markdown()}\n\n"
        f"Per device, heartbeat only (ms):\n\n{device_table(runs['heartbeat']).markdown()}\n"
    )


if __name__ == "__main__":
    main()
