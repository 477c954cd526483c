"""The device side's own code against a live control plane: the protocol, end to end."""

from __future__ import annotations

import json
import time

import pytest

from control_plane.devices.models import Device, DeviceEvent, Reading
from control_plane.devices.services import create_enrollment_token
from control_plane.rollouts.choices import RolloutTarget
from control_plane.rollouts.services import assign_now
from control_plane.signing import load_signing_key, public_key_text, signing_key_id
from device_host.agent.artifacts import ArtifactStore
from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError
from fleet_common.wire.reports import EngineReport
from fleet_common.wire.statements import DESIRED_STATE_TYPE, Release, key_id, verify
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


ENGINE = EngineReport("ab" * 32, "x86_64-unknown-linux-gnu")


def trusted() -> dict[str, object]:
    public_key = load_signing_key().public_key()
    return {key_id(public_key): public_key}


def test_the_agents_client_enrolls_heartbeats_and_downloads(live_server, approved, hello, tmp_path):
    assign_now(version=approved(), target=RolloutTarget.ALL)
    _, secret = create_enrollment_token(label="e2e")
    client = ControlPlaneClient(live_server.url)

    enrolled = client.enroll(secret, "pi-e2e", "0.1.0", ENGINE)
    client.token = enrolled.device_token
    answer = client.heartbeat(
        {"host_version": "0.1.0", "plugins": [], "readings": [], "events": []}
    )

    statement = verify(answer.desired, trusted(), DESIRED_STATE_TYPE)
    assert statement["device_id"] == enrolled.device_id
    release = Release.from_envelope(statement["releases"][0], trusted())
    component = ArtifactStore(tmp_path / "artifacts").fetch(release, client)
    assert component.read_bytes() == hello.component


def test_the_agents_client_reports_a_refused_enrollment(live_server):
    client = ControlPlaneClient(live_server.url)

    with pytest.raises(ControlPlaneError) as refused:
        client.enroll("nope", "pi", "0.1.0", ENGINE)

    assert refused.value.status == 403
    assert "unknown enrollment token" in str(refused.value)


@pytest.mark.slow
def test_a_real_device_host_enrolls_installs_and_reports(
    live_server, approved, host_process, tmp_path
):
    """A device host process in signed mode converges on what the control plane assigns."""
    assign_now(version=approved(), target=RolloutTarget.ALL)
    _, secret = create_enrollment_token(label="host")
    keys = tmp_path / "trusted-keys"
    keys.mkdir()
    (keys / f"{signing_key_id()}.pub").write_text(public_key_text() + "\n")
    host_process.settings = {
        "plugins": {"source": "signed"},
        "agent": {
            "control_plane_url": live_server.url,
            "enrollment_token": secret,
            "device_name": "pi-host",
            "trusted_keys_dir": str(keys),
            "heartbeat_interval_s": 0.5,
        },
    }
    host_process.start(wait_for="ok")

    def hello_running() -> bool:
        device = Device.objects.filter(name="pi-host").first()
        plugins = device.reported_plugins if device else []
        return any(p["name"] == "hello" and p["state"] == "running" for p in plugins)

    wait_until(hello_running, timeout=90, what="hello running on the device")
    device = Device.objects.get(name="pi-host")
    wait_until(lambda: Reading.objects.filter(device=device).exists(), timeout=30)
    wait_until(lambda: DeviceEvent.objects.filter(device=device, kind="installed").exists())
    assert json.loads(json.loads(device.desired_envelope)["statement"])["sequence"] == 1
    assert host_process.plugin("hello")["version"] == "1.0.0"
    time.sleep(0)
