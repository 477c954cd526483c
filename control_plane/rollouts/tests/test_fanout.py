"""Fan-out at fleet size: a rollout is recorded by the request and delivered by the worker
in chunks of ``NOTICE_BATCH`` devices, each signed outside any transaction and written in
its own (a savepoint inside the test's); a device that changed meanwhile is left stale, not
lost; a worker that dies between chunks leaves a wave the next job finishes; the page
shows how far it got."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django_q.conf import Conf
from django_q.models import OrmQ

from control_plane.devices.models import Device
from control_plane.devices.tokens import hash_token
from control_plane.plugins.models import PluginVersion
from control_plane.rollouts import desired, jobs
from control_plane.rollouts.choices import RolloutStatus, RolloutTarget
from control_plane.rollouts.desired import latest_release
from control_plane.rollouts.models import DeviceRelease, Rollout, StaleDesiredState
from control_plane.rollouts.selectors import delivery_progress
from control_plane.rollouts.services import assign_now, evaluate, roll_back_rollout

FLEET = 1200
BATCH = 300
"""NOTICE_BATCH here; a chunk is `desired.chunk_size()`: this, or less on SQLite."""

pytestmark = pytest.mark.django_db


class WorkerDied(Exception):
    """Stands for the worker process being killed between two chunks."""


@pytest.fixture
def fleet(settings) -> list[Device]:
    """1,200 devices made by ``bulk_create`` (enrolling each would sign 1,200 states), in
    chunks of 300: the same four chunks as 10,000 in chunks of 2,500."""
    settings.NOTICE_BATCH = BATCH
    devices = [
        Device(name=f"pi-{n:04}", token_hash=hash_token(secrets.token_urlsafe(16)))
        for n in range(FLEET)
    ]
    return Device.objects.bulk_create(devices, batch_size=1000)


@pytest.fixture
def chunks(monkeypatch) -> list[tuple[int, bool]]:
    """Each chunk's notices: how many devices, and whether inside a transaction."""
    seen: list[tuple[int, bool]] = []

    def record(devices: list[Device]) -> None:
        seen.append((len(devices), connection.in_atomic_block))

    monkeypatch.setattr(desired, "record_notices", record)
    return seen


@pytest.fixture
def versions(approved, monkeypatch) -> Iterator[dict[str, PluginVersion]]:
    """hello 1.0.0 and 1.1.0, checked and approved; then jobs go to the queue table, as with
    a real worker, instead of running inside the call that queues them."""
    found = {v: approved(v) for v in ("1.0.0", "1.1.0")}
    monkeypatch.setattr(Conf, "SYNC", False)
    yield found


def sequences() -> list[int]:
    return list(Device.objects.order_by("pk").values_list("desired_sequence", flat=True))


def test_assigning_to_the_fleet_records_the_rollout_and_computes_nothing(fleet, versions, chunks):
    rollout = assign_now(version=versions["1.0.0"], target=RolloutTarget.ALL)

    assert rollout.status == RolloutStatus.SCHEDULED
    assert not rollout.wave_set.exists() and not rollout.members.exists()
    assert not DeviceRelease.objects.exists() and chunks == []
    assert OrmQ.objects.count() == 1  # the engine's job, committed with the rollout
    assert delivery_progress(rollout)["text"] == "planning: the worker plans the waves"


def test_the_worker_writes_a_fleet_assignment_in_chunks_of_its_own(fleet, versions, chunks):
    rollout = assign_now(version=versions["1.0.0"], target=RolloutTarget.ALL)

    evaluate(rollout.pk)

    assert chunks == [(desired.chunk_size(), True)] * (FLEET // desired.chunk_size())
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.COMPLETED
    assert DeviceRelease.objects.filter(release__version__version="1.0.0").count() == FLEET
    assert set(sequences()) == {1}
    assert rollout.decisions.filter(kind="delivered", counts={"delivered": FLEET}).exists()


def test_a_worker_that_dies_after_two_chunks_leaves_a_wave_the_next_job_finishes(
    fleet, versions, monkeypatch
):
    rollout = assign_now(version=versions["1.0.0"], target=RolloutTarget.ALL)
    done: list[int] = []

    def dies_on_the_third(devices: list[Device]) -> None:
        if len(done) == 2:
            raise WorkerDied
        done.append(len(devices))

    monkeypatch.setattr(desired, "record_notices", dies_on_the_third)
    with pytest.raises(WorkerDied):
        evaluate(rollout.pk)

    wave = rollout.wave_set.get()
    assert (wave.delivered, wave.delivered_at) == (2 * desired.chunk_size(), None)
    assert DeviceRelease.objects.count() == 2 * desired.chunk_size()
    assert sorted(set(sequences())) == [0, 1]
    progress = delivery_progress(rollout)
    assert progress["text"] == f"canary: {2 * desired.chunk_size()} of {FLEET} devices updated"

    monkeypatch.setattr(desired, "record_notices", lambda devices: None)
    jobs.tick()  # the minute tick: what a re-run of the job also does

    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.COMPLETED
    assert DeviceRelease.objects.count() == FLEET
    assert set(sequences()) == {1}  # every device re-signed exactly once


def test_a_fleet_rollback_leaves_stale_markers_the_worker_rebuilds_in_chunks(
    fleet, versions, chunks
):
    assign_now(version=versions["1.0.0"], target=RolloutTarget.ALL)
    jobs.tick()
    rollout = assign_now(version=versions["1.1.0"], target=RolloutTarget.ALL)
    jobs.tick()
    chunks.clear()

    roll_back_rollout(rollout=Rollout.objects.get(pk=rollout.pk))

    assert StaleDesiredState.objects.count() == FLEET and chunks == []
    assert delivery_progress(rollout)["stale"] == FLEET
    jobs.refresh_stale_desired_states()
    assert chunks == [(desired.chunk_size(), True)] * (FLEET // desired.chunk_size())
    assert not StaleDesiredState.objects.exists()
    assert set(sequences()) == {3}


def test_the_command_returns_at_once_and_waits_only_when_asked(fleet, versions, capsys):
    call_command("assign_release", "hello", "1.0.0", "all")
    assert "is scheduled" in capsys.readouterr().out
    with pytest.raises(CommandError, match="is the job worker"):
        call_command("assign_release", "hello", "1.0.0", "device:pi-0001", "--wait", "0.3")


def test_the_rollout_page_shows_progress_while_the_worker_delivers(
    fleet, versions, admin_client, monkeypatch
):
    rollout = assign_now(version=versions["1.0.0"], target=RolloutTarget.ALL)
    page = admin_client.get(f"/fleet/rollouts/{rollout.pk}/").content.decode()
    assert "planning: the worker plans the waves" in page

    calls: list[int] = []

    def dies_on_the_second(devices: list[Device]) -> None:
        if calls:
            raise WorkerDied
        calls.append(len(devices))

    monkeypatch.setattr(desired, "record_notices", dies_on_the_second)
    with pytest.raises(WorkerDied):
        evaluate(rollout.pk)

    page = admin_client.get(f"/fleet/rollouts/{rollout.pk}/").content.decode()
    assert f"canary: {desired.chunk_size()} of {FLEET} devices updated" in page
    summary = admin_client.get(f"/fleet/rollouts/{rollout.pk}.json").json()
    assert summary["progress"]["delivered"] == desired.chunk_size()
    assert "notices_pending" in summary


def test_no_push_code_is_left():
    app = Path(desired.__file__).parent
    assert not (app / "push.py").exists()
    sources = "\n".join(
        p.read_text() for p in app.rglob("*.py") if not {"tests", "migrations"} & set(p.parts)
    )
    assert "agent_url" not in sources and "push_desired_states" not in sources


def test_a_device_that_changes_while_its_chunk_is_signed_is_left_stale_not_lost(versions):
    devices = Device.objects.bulk_create(
        [Device(name=f"pi-{n}", token_hash=hash_token(secrets.token_urlsafe(16))) for n in range(3)]
    )
    release = latest_release(versions["1.0.0"])
    DeviceRelease.objects.bulk_create(
        [DeviceRelease(device=d, plugin=release.plugin, release=release) for d in devices]
    )
    plan = desired.plan_chunk([d.pk for d in devices])
    Device.objects.filter(pk=devices[0].pk).update(engine_key="a-new-engine")  # meanwhile

    with transaction.atomic():
        changed = desired.write_chunk(plan)

    assert {d.pk for d in changed} == {devices[1].pk, devices[2].pk}
    assert list(StaleDesiredState.objects.values_list("device_id", flat=True)) == [devices[0].pk]
    assert desired.refresh_stale() == 1
    assert sequences() == [1, 1, 1] and not StaleDesiredState.objects.exists()
