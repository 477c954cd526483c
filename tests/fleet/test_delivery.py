"""Signed delivery end to end: the control plane behind nginx with TLS, the broker, and device
hosts as real processes; devices open every connection, none is opened to them."""

from __future__ import annotations

import hashlib
import json
import signal
import time
import uuid
from pathlib import Path

import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from fleet_common.wire.statements import desired_state_statement, sign
from tests.support import http_get, wait_until


def _hello(device) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return http_get(f"{device.url}/plugins/hello/")


def _wait_serving(devices, body: str, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    for device in devices:
        wait_until(lambda d=device: _hello(d) == (200, body), timeout, f"{body!r} on {device.url}")


def _hello_version(build, n: int) -> Path:  # type: ignore[no-untyped-def]
    if n == 1:
        return build("hello")
    return build(
        "hello", replace={"version 1": f"version {n}"}, version=f"{n}.0.0", label=f"hello-v{n}"
    )


def _publish(fleet, build, n: int, *extra: str) -> None:  # type: ignore[no-untyped-def]
    fleet.control_plane.manage("publish_plugin", str(_hello_version(build, n)), *extra)


def _compiled(fleet, folder: Path, field: str = "sha256") -> str:  # type: ignore[no-untyped-def]
    """A field of the x86_64 artifact of the version built in ``folder``, from the database."""
    sha256 = hashlib.sha256((folder / "hello.wasm").read_bytes()).hexdigest()
    output = fleet.control_plane.manage(
        "shell",
        "-c",
        "import json; from control_plane.builds.models import CompiledArtifact as A;"
        f"a = A.objects.get(version__sha256={sha256!r}, device_class__name='x86_64');"
        f"print(json.dumps(a.{field}))",
    )
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _artifact(fleet, folder: Path) -> str:  # type: ignore[no-untyped-def]
    """The digest of the compiled artifact devices download for the version in ``folder``."""
    return _compiled(fleet, folder)


def _loads(device) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """``plugin_loads_total`` by where the code came from, from the device's /metrics."""
    status, text = http_get(f"{device.url}/metrics")
    assert status == 200
    found = {}
    for line in text.splitlines():
        if line.startswith("plugin_loads_total{"):
            how = line.split('how="', 1)[1].split('"', 1)[0]
            found[how] = float(line.rsplit(" ", 1)[1])
    return found


def _load_error(device) -> str | None:  # type: ignore[no-untyped-def]
    return device.plugin("hello").get("load_error")


def _serve(fleet, envelope: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Makes ``envelope`` its device's desired state in the control plane's database, as a
    compromised database or a man in the middle with the fleet's TLS key could."""
    statement = json.loads(envelope["statement"])
    fleet.control_plane.shell(
        "from control_plane.devices.models import Device\n"
        f"result = Device.objects.filter(pk={statement['device_id']!r}).update("
        f"desired_envelope={json.dumps(envelope, separators=(',', ':'))!r},"
        f" desired_sequence={statement['sequence']})"
    )


def _refused_desired_state(device) -> str | None:  # type: ignore[no-untyped-def]
    problem = device.healthz()["agent"]["problems"].get("desired-state")
    return None if problem is None else str(problem["message"])


def _agent_state(device) -> dict:  # type: ignore[no-untyped-def]
    return json.loads((device.workdir / "state" / "agent" / "agent.json").read_text())


def _fleet_key(fleet) -> Ed25519PrivateKey:  # type: ignore[no-untyped-def]
    key = load_pem_private_key(fleet.control_plane.signing_key_path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def test_1_a_published_release_reaches_every_device(fleet, build):
    _publish(fleet, build, 1, "--assign", "all")

    _wait_serving(fleet.devices, "hello from version 1")
    for device in fleet.devices:
        assert device.plugin("hello")["version"] == "1.0.0"
        assert device.healthz()["agent"]["enrolled"] is True
        assert _loads(device) == {"delivered": 1.0}, "the device compiled instead of loading"
        assert not list((device.workdir / "state" / "artifacts").glob("*.wasm"))


def test_2_a_new_version_is_announced_and_swapped_in(fleet, build):
    started = time.monotonic()
    _publish(fleet, build, 2, "--assign", "all")

    _wait_serving(fleet.devices, "hello from version 2")
    assert time.monotonic() - started < 60
    for device in fleet.devices:
        agent = device.healthz()["agent"]
        assert agent["channel"]["state"] == "connected", agent["channel"]
        assert agent["channel"]["last_notice"] == agent["accepted_sequence"], agent["channel"]


def test_2b_with_the_broker_down_devices_still_converge_by_heartbeat(fleet, build):
    broker = fleet.control_plane.broker
    broker.stop()
    try:
        fleet.control_plane.manage("publish_plugin", str(build("lab")), "--assign", "all")
        for device in fleet.devices:
            wait_until(lambda d=device: _plugin_state(d, "lab") == ("1.0.0", "running"), 90)
            assert device.healthz()["agent"]["channel"]["state"] != "connected"
        assert _pending_notices(fleet) >= len(fleet.devices)
    finally:
        broker.start()
    # What the worker's minute sweep does; run here rather than waited for.
    fleet.control_plane.shell(
        "from control_plane.notices.jobs import publish_notices\nresult = publish_notices()"
    )
    assert _pending_notices(fleet) == 0
    for device in fleet.devices:
        wait_until(lambda d=device: d.healthz()["agent"]["channel"]["state"] == "connected", 90)


def _pending_notices(fleet) -> int:  # type: ignore[no-untyped-def]
    return int(
        fleet.control_plane.shell(
            "from control_plane.notices.selectors import backlog\nresult = backlog().pending"
        )
    )


def test_3_a_corrupted_download_is_retried_not_refused_and_installs_once_repaired(fleet, build):
    folder = _hello_version(build, 3)
    _publish(fleet, build, 3, "--approve")
    artifact, control_plane = _artifact(fleet, folder), fleet.control_plane
    good = control_plane.read_blob(artifact)
    tampered = bytearray(zstandard.ZstdDecompressor().decompress(good))
    tampered[len(tampered) // 2] ^= 0xFF  # one flipped byte in the machine code
    control_plane.write_blob(artifact, zstandard.ZstdCompressor().compress(bytes(tampered)))

    fleet.control_plane.manage("assign_release", "hello", "3.0.0", "all")

    for device in fleet.devices:
        problem = wait_until(lambda d=device: _download_problem(d, "3.0.0"), 60, "a retry")
        assert "signed" in problem
        assert _load_error(device) is None
        assert "hello" not in _agent_state(device)["held"]
        assert _hello(device) == (200, "hello from version 2")
    control_plane.write_blob(artifact, good)
    _wait_serving(fleet.devices, "hello from version 3")


def test_4_a_truncated_download_is_retried_and_installs_once_repaired(fleet, build):
    folder = _hello_version(build, 4)
    _publish(fleet, build, 4, "--approve")
    artifact, control_plane = _artifact(fleet, folder), fleet.control_plane
    good = control_plane.read_blob(artifact)
    control_plane.write_blob(artifact, good[: len(good) // 2])

    fleet.control_plane.manage("assign_release", "hello", "4.0.0", "all")

    for device in fleet.devices:
        wait_until(lambda d=device: _download_problem(d, "4.0.0"), 60, "a retry")
        assert _hello(device) == (200, "hello from version 3")
    control_plane.write_blob(artifact, good)
    _wait_serving(fleet.devices, "hello from version 4")


def test_5_an_oversized_download_stops_at_the_signed_size_and_is_retried(fleet, build):
    folder = _hello_version(build, 5)
    _publish(fleet, build, 5, "--approve")
    artifact, control_plane = _artifact(fleet, folder), fleet.control_plane
    good = control_plane.read_blob(artifact)
    original = zstandard.ZstdDecompressor().decompress(good)
    control_plane.write_blob(artifact, zstandard.ZstdCompressor().compress(original + original))

    fleet.control_plane.manage("assign_release", "hello", "5.0.0", "all")

    for device in fleet.devices:
        problem = wait_until(lambda d=device: _download_problem(d, "5.0.0"), 60, "a retry")
        assert "larger than the signed" in problem
        assert _hello(device) == (200, "hello from version 4")
    control_plane.write_blob(artifact, good)
    _wait_serving(fleet.devices, "hello from version 5")


def test_6_a_desired_state_signed_by_an_untrusted_key_is_refused(fleet):
    device = fleet.devices[0]
    state = _agent_state(device)
    statement = desired_state_statement(state["device_id"], state["desired_sequence"] + 100, [], [])

    _serve(fleet, sign(statement, Ed25519PrivateKey.generate()))

    problem = wait_until(lambda: _refused_desired_state(device), 30, "the refusal reported")
    assert "untrusted key" in problem
    assert _hello(device) == (200, "hello from version 5")


def test_7_a_replayed_older_serial_is_refused(fleet):
    device = fleet.devices[0]
    state = _agent_state(device)
    older = state["last_good"]["hello"]["envelope"]
    statement = desired_state_statement(
        state["device_id"], state["desired_sequence"] + 1, [older], []
    )

    _serve(fleet, sign(statement, _fleet_key(fleet)))

    wait_until(lambda: "rollback protection" in (_load_error(device) or ""), 30)
    assert _hello(device) == (200, "hello from version 5")


def test_8_devices_keep_serving_while_the_control_plane_is_down_and_converge_after(fleet, build):
    _publish(fleet, build, 6, "--approve")
    fleet.control_plane.stop()
    time.sleep(3)  # several missed heartbeats

    for device in fleet.devices:
        assert _hello(device) == (200, "hello from version 5")

    fleet.control_plane.start()
    fleet.control_plane.manage("assign_release", "hello", "6.0.0", "all")
    _wait_serving(fleet.devices, "hello from version 6")


def test_9_a_device_killed_during_an_update_comes_back_on_a_good_version(fleet, build):
    device = fleet.devices[1]
    _publish(fleet, build, 7, "--approve")
    fleet.control_plane.manage("assign_release", "hello", "7.0.0", "all")
    time.sleep(0.3)
    device.process.send_signal(signal.SIGKILL)
    device.process.wait()
    device.process = None

    device.start(wait_for="ok")

    assert _hello(device)[1] in {"hello from version 6", "hello from version 7"}
    _wait_serving([device], "hello from version 7")


def test_10_a_release_that_keeps_trapping_is_reverted_and_reported(fleet, build):
    fleet.control_plane.manage("publish_plugin", str(build("ticker")), "--assign", "all")
    for device in fleet.devices:
        wait_until(lambda d=device: _plugin_state(d, "ticker") == ("1.0.0", "running"), 90)
    broken = build(
        "ticker", replace={"BROKEN = False": "BROKEN = True"}, version="2.0.0", label="ticker-v2"
    )

    fleet.control_plane.manage("publish_plugin", str(broken), "--assign", "all")

    for device in fleet.devices:
        wait_until(lambda d=device: _reverted(d, "ticker"), 90, "a revert")
        wait_until(lambda d=device: _plugin_state(d, "ticker") == ("1.0.0", "running"), 30)

    def reverts_reported() -> int:
        output = fleet.control_plane.manage(
            "shell",
            "-c",
            "from control_plane.devices.models import DeviceEvent;"
            "print(DeviceEvent.objects.filter(plugin='ticker', kind='reverted').count())",
        )
        return int(output.strip().splitlines()[-1])

    wait_until(lambda: reverts_reported() >= len(fleet.devices), 30, "reverts reported")


def test_11_a_reverted_release_is_installed_again_when_a_later_desired_state_asks(fleet):
    reverted_at = {d.url: _agent_state(d)["held"]["ticker"]["sequence"] for d in fleet.devices}
    fleet.control_plane.manage("assign_release", "ticker", "1.0.0", "all")  # a new serial

    fleet.control_plane.manage("assign_release", "ticker", "2.0.0", "all")  # and another

    for device in fleet.devices:
        wait_until(
            lambda d=device: (
                _agent_state(d)["held"].get("ticker", {}).get("sequence", 0) > reverted_at[d.url]
            ),
            120,
            "the release installed again (and, still broken, reverted again)",
        )
        assert _agent_state(device)["held"]["ticker"]["why"] == "reverted"


def test_12_a_plugin_uninstalled_and_assigned_again_is_installed_again(fleet):
    _uninstall(fleet, "hello")
    for device in fleet.devices:
        wait_until(lambda d=device: _plugin_state(d, "hello") == (None, None), 60, "removal")

    fleet.control_plane.manage("assign_release", "hello", "7.0.0", "all")

    _wait_serving(fleet.devices, "hello from version 7")
    for device in fleet.devices:
        assert _load_error(device) is None


def test_13_a_control_plane_restored_behind_its_devices_catches_up(fleet):
    """A device accepted a sequence its control plane no longer has (the database was
    restored from an older backup): it reports it, and the control plane re-signs the
    device's desired state above it instead of offering states the device must refuse."""
    device = fleet.devices[0]
    state = _agent_state(device)
    releases = [record["envelope"] for record in state["releases"].values()]
    compiled = [r["compiled"] for r in state["releases"].values() if r.get("compiled")]
    ahead = state["desired_sequence"] + 10
    backup = fleet.control_plane.shell(
        "from control_plane.devices.models import Device\n"
        f"d = Device.objects.get(pk={state['device_id']!r})\n"
        "result = [d.desired_envelope, d.desired_sequence]"
    )
    statement = desired_state_statement(state["device_id"], ahead, releases, compiled)
    _serve(fleet, sign(statement, _fleet_key(fleet)))
    wait_until(lambda: _agent_state(device)["desired_sequence"] == ahead, 30, "the state ahead")

    fleet.control_plane.shell(
        "from control_plane.devices.models import Device\n"
        f"result = Device.objects.filter(pk={state['device_id']!r})"
        f".update(desired_envelope={backup[0]!r}, desired_sequence={backup[1]})"
    )

    wait_until(
        lambda: device.healthz()["agent"]["accepted_sequence"] > ahead, 30, "a state above it"
    )
    assert _refused_desired_state(device) is None
    assert _hello(device) == (200, "hello from version 7")


def test_14_a_compiled_artifact_that_is_not_this_release_for_this_engine_is_refused(fleet, build):
    """Signed by a stranger, compiled for another engine key, or another release's: none
    reaches deserialize. A device that may compiles the release itself; one that may not
    waits, reporting why."""
    _publish(fleet, build, 8, "--approve")
    folder = _hello_version(build, 8)
    genuine = _compiled(fleet, folder, "envelope")
    statement = json.loads(genuine["statement"])
    other_engine = {**statement, "engine": {**statement["engine"], "key": "0" * 64}}
    key = _fleet_key(fleet)
    compiled = [
        sign(statement, Ed25519PrivateKey.generate()),
        sign(other_engine, key),
        _compiled(fleet, _hello_version(build, 7), "envelope"),
    ]
    release = _release(fleet, "8.0.0")
    kitchen, greenhouse = fleet.devices
    compiled_before = _loads(kitchen).get("compiled", 0.0)

    for device in fleet.devices:
        state = _agent_state(device)
        sequence = max(state["desired_sequence"], device.healthz()["agent"]["accepted_sequence"])
        desired = desired_state_statement(state["device_id"], sequence + 1, [release], compiled)
        _serve(fleet, sign(desired, key))

    problem = wait_until(lambda: _no_artifact(greenhouse, "8.0.0"), 30, "the refusal reported")
    assert "signed with untrusted key" in problem
    assert "compiled for engine key 0000000000000000" in problem
    assert "not hello 8.0.0" in problem and "waiting for one" in problem
    assert _hello(greenhouse) == (200, "hello from version 7")
    _wait_serving([kitchen], "hello from version 8")
    assert _loads(kitchen)["compiled"] == compiled_before + 1
    assert "compiling it here" in (_no_artifact(kitchen, "8.0.0") or "")


def test_15_a_worker_killed_mid_check_leaves_no_artifact_and_the_queue_survives_a_restart(
    fleet, build
):
    """The check's compile is killed with its worker; gunicorn restarts too. The queued
    job is handed out again after the retry time and finishes: nothing lost, nothing half."""
    control_plane = fleet.control_plane
    nonce = uuid.uuid4().hex[:8]  # new bytes every run: this compile must not be cached
    folder = build(
        "hello",
        replace={"version 1": f"version 9 {nonce}"},
        version="9.0.0",
        label=f"hello-v9-{nonce}",
    )
    sha256 = hashlib.sha256((folder / "hello.wasm").read_bytes()).hexdigest()
    control_plane.manage("publish_plugin", str(folder))  # returns once queued
    wait_until(lambda: "processing check hello 9.0.0" in control_plane.worker_log(), 30)
    time.sleep(1.0)  # into the compile

    control_plane.kill_worker()
    control_plane.stop()

    assert _version_field(fleet, "9.0.0", "status") == "checking"
    assert not list(control_plane.compiled_dir.glob(f"{sha256}-*.cwasm"))
    control_plane.start()
    wait_until(
        lambda: _version_field(fleet, "9.0.0", "status") == "pending",
        control_plane.job_retry_s + 90,
        "the check handed out again",
    )
    artifact = _version_artifact(fleet, "9.0.0")
    assert artifact["state"] == "ready" and artifact["attempts"] == 1
    assert control_plane.shell(
        "from control_plane.blobs.models import Blob\n"
        f"result = Blob.objects.filter(pk={artifact['sha256']!r}, kind='compiled').exists()"
    )


def _version_field(fleet, version: str, field: str) -> object:  # type: ignore[no-untyped-def]
    output = fleet.control_plane.manage(
        "shell",
        "-c",
        "import json; from control_plane.plugins.models import PluginVersion as V;"
        f"print(json.dumps(V.objects.get(plugin__name='hello', version={version!r}).{field}))",
    )
    return json.loads(output.strip().splitlines()[-1])


def _version_artifact(fleet, version: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    output = fleet.control_plane.manage(
        "shell",
        "-c",
        "import json; from control_plane.builds.models import CompiledArtifact as A;"
        f"a = A.objects.get(version__plugin__name='hello', version__version={version!r},"
        "device_class__name='x86_64');"
        "print(json.dumps({'state': a.state, 'attempts': a.attempts, 'sha256': a.sha256}))",
    )
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _release(fleet, version: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    output = fleet.control_plane.manage(
        "shell",
        "-c",
        "import json; from control_plane.plugins.models import PluginVersion as V;"
        f"print(json.dumps(V.objects.get(plugin__name='hello', version={version!r})"
        ".release_envelope))",
    )
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _no_artifact(device, version: str) -> str | None:  # type: ignore[no-untyped-def]
    for key, problem in device.healthz()["agent"]["problems"].items():
        if key.startswith(f"no artifact hello {version}"):
            return str(problem["message"])
    return None


def _uninstall(fleet, plugin: str) -> None:  # type: ignore[no-untyped-def]
    fleet.control_plane.manage("uninstall_plugin", plugin, "all")


def _download_problem(device, version: str) -> str | None:  # type: ignore[no-untyped-def]
    for key, problem in device.healthz()["agent"]["problems"].items():
        if key.startswith(f"download hello {version}"):
            return str(problem["message"])
    return None


def _plugin_state(device, name: str) -> tuple[str | None, str | None]:  # type: ignore[no-untyped-def]
    for plugin in device.healthz()["plugins"]:
        if plugin["name"] == name:
            return plugin.get("version"), plugin.get("state")
    return None, None


def _reverted(device, name: str) -> bool:  # type: ignore[no-untyped-def]
    return any(e["kind"] == "reverted" and e["plugin"] == name for e in device.healthz()["events"])
