"""The outbox and its publisher against a real Mosquitto: devices hear their own retained
notice and nobody else's; a broker outage leaves notices pending until a later run."""

from __future__ import annotations

import queue
import socket
import ssl
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from control_plane.devices.models import Device
from control_plane.notices import jobs, services
from control_plane.notices.broker import NoticePublisher
from control_plane.notices.models import DesiredNotice, RetiredTopic
from control_plane.notices.services import (
    PUBLISH_JOB,
    claim_batch,
    grant_channel,
    record_notices,
    settle_batch,
)
from control_plane.notices.tests.conftest import DeviceClient, make_csr
from fleet_common.wire.channel import desired_topic
from fleet_common.wire.notices import parse_notice
from tests.servers_mqtt import Mosquitto, ThrowawayCA, write_private


def raise_sequence(device: Device, sequence: int) -> None:
    """What rollouts.desired does when a device's desired state changes."""
    Device.objects.filter(pk=device.pk).update(desired_sequence=sequence)
    device.desired_sequence = sequence
    record_notices([device])


@pytest.fixture
def listen(broker: Mosquitto, tmp_path):
    """Connects as a device with a certificate granted through `grant_channel`."""
    clients: list[DeviceClient] = []

    def _listen(device: Device) -> DeviceClient:
        csr, key_pem = make_csr()
        grant = grant_channel(device, csr)
        assert grant is not None
        folder = tmp_path / f"client-{len(clients)}"
        folder.mkdir()
        clients.append(DeviceClient(broker, folder, str(grant["certificate"]), key_pem))
        return clients[-1]

    yield _listen
    for client in clients:
        client.close()


def test_a_committed_change_reaches_the_device_as_a_retained_notice(
    enroll, listen, django_capture_on_commit_callbacks
):
    device, _ = enroll("pi-x")

    with django_capture_on_commit_callbacks(execute=True):
        raise_sequence(device, 3)

    notice = DesiredNotice.objects.get(device=device)
    assert (notice.sequence, notice.published_sequence, notice.attempts) == (3, 3, 0)
    client = listen(device)
    client.subscribe(desired_topic(str(device.pk)))
    topic, payload = client.next_message()
    assert topic == desired_topic(str(device.pk))
    assert parse_notice(payload).sequence == 3


def test_a_device_reads_only_its_own_topic_and_writes_none(enroll, listen):
    x, _ = enroll("pi-x")
    y, _ = enroll("pi-y")
    raise_sequence(x, 5)
    raise_sequence(y, 7)
    assert jobs.publish_notices() == 2
    spy = listen(x)

    spy.subscribe(desired_topic(str(y.pk)))
    spy.subscribe("pi-fleet/devices/#")
    spy.client.publish(desired_topic(str(y.pk)), b'{"desired_sequence":0}', qos=1, retain=True)
    spy.subscribe(desired_topic(str(x.pk)))

    # Retained messages arrive in subscription order: by x's own notice (subscribed last)
    # anything of y's would have arrived; exactly one copy of x's comes, from the "#" and
    # its own subscription overlapping.
    heard = [spy.next_message()]
    while not spy.messages.empty():
        heard.append(spy.next_message())
    assert {topic for topic, _ in heard} == {desired_topic(str(x.pk))}
    victim = listen(y)
    victim.subscribe(desired_topic(str(y.pk)))
    assert parse_notice(victim.next_message()[1]).sequence == 7


def test_with_the_broker_stopped_notices_stay_pending_and_a_later_run_publishes_them(
    enroll, broker: Mosquitto, listen
):
    device, _ = enroll("pi-x")
    raise_sequence(device, 2)
    broker.stop()

    assert jobs.publish_notices() == 0

    notice = DesiredNotice.objects.get(device=device)
    assert notice.pending and notice.attempts == 1
    assert "cannot connect" in notice.last_error
    broker.start()
    assert jobs.publish_notices() == 1
    notice.refresh_from_db()
    assert (notice.published_sequence, notice.attempts, notice.last_error) == (2, 0, "")
    client = listen(device)
    client.subscribe(desired_topic(str(device.pk)))
    assert parse_notice(client.next_message()[1]).sequence == 2


def test_a_deleted_devices_retained_notice_is_cleared_from_the_broker(
    enroll, listen, django_capture_on_commit_callbacks
):
    device, _ = enroll("pi-x")
    topic = desired_topic(str(device.pk))
    raise_sequence(device, 3)
    jobs.publish_notices()
    client = listen(device)  # its certificate outlives the device
    client.subscribe(topic)
    assert parse_notice(client.next_message()[1]).sequence == 3

    with django_capture_on_commit_callbacks(execute=True):
        device.delete()

    assert client.next_message() == (topic, b"")  # what removes a retained message
    assert not RetiredTopic.objects.exists()
    client.subscribe(topic)  # a new subscription gets the retained message, if any is left
    with pytest.raises(queue.Empty):
        client.next_message(timeout=1.0)


def test_with_the_broker_stopped_a_deleted_devices_topic_is_cleared_by_a_later_run(
    enroll, broker: Mosquitto, listen, admin_client
):
    device, _ = enroll("pi-x")
    device_id = device.pk
    raise_sequence(device, 2)
    jobs.publish_notices()
    broker.stop()

    device.delete()
    assert jobs.publish_notices() == 0

    retired = RetiredTopic.objects.get()
    assert (retired.device_id, retired.attempts) == (device_id, 1)
    assert "cannot connect" in retired.last_error
    page = admin_client.get("/admin/notices/desirednotice/").content.decode()
    assert "1 deleted devices&#x27; retained notices are still on the broker" in page
    broker.start()
    jobs.publish_notices()
    assert not RetiredTopic.objects.exists()
    # A certificate issued before the deletion is still valid (there is no revocation list).
    client = listen(Device(pk=device_id, name="pi-x"))
    client.subscribe(desired_topic(str(device_id)))
    with pytest.raises(queue.Empty):
        client.next_message(timeout=1.0)


def test_a_deletion_rolled_back_retires_no_topic(enroll):
    device, _ = enroll("pi-x")

    with pytest.raises(RuntimeError), transaction.atomic():
        device.delete()
        raise RuntimeError("the deletion fails after the device row went")

    assert Device.objects.filter(name="pi-x").exists()
    assert not RetiredTopic.objects.exists()


def test_a_sequence_raised_while_its_batch_is_out_stays_pending(enroll):
    device, _ = enroll("pi-x")
    raise_sequence(device, 4)
    claim, rows = claim_batch(10)

    raise_sequence(device, 5)
    settle_batch(claim, [], "")

    assert rows == [(device.pk, 4)]
    notice = DesiredNotice.objects.get(device=device)
    assert (notice.sequence, notice.published_sequence) == (5, 4)
    assert notice.pending


def test_a_run_publishes_what_was_raised_during_it_next(enroll, listen, monkeypatch):
    device, _ = enroll("pi-x")
    raise_sequence(device, 4)
    publish = NoticePublisher.publish
    sent: list[list[bytes]] = []

    def publish_then_change(self, messages):  # type: ignore[no-untyped-def]
        sent.append([payload for _, payload in messages])
        acked = publish(self, messages)
        if len(sent) == 1:
            raise_sequence(device, 5)
        return acked

    monkeypatch.setattr(NoticePublisher, "publish", publish_then_change)

    assert jobs.publish_notices() == 2

    assert [[parse_notice(p).sequence for p in batch] for batch in sent] == [[4], [5]]
    assert not DesiredNotice.objects.get(device=device).pending
    client = listen(device)
    client.subscribe(desired_topic(str(device.pk)))
    assert parse_notice(client.next_message()[1]).sequence == 5


def test_a_claimed_batch_is_not_handed_to_a_second_worker(enroll):
    for name in ("pi-1", "pi-2", "pi-3"):
        raise_sequence(enroll(name)[0], 1)

    _, first = claim_batch(2)
    _, second = claim_batch(10)
    _, third = claim_batch(10)

    assert len(first) == 2 and len(second) == 1 and third == []
    assert {device for device, _ in first}.isdisjoint(device for device, _ in second)


def test_a_batch_whose_worker_died_is_published_once_its_lease_ends(enroll):
    device, _ = enroll("pi-x")
    raise_sequence(device, 6)
    claim_batch(10)
    assert jobs.publish_notices() == 0

    DesiredNotice.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))

    assert jobs.publish_notices() == 1
    assert not DesiredNotice.objects.get(device=device).pending


def test_without_a_broker_nothing_is_recorded(settings, enroll):
    settings.MQTT_URL = None
    device, _ = enroll("pi-x")

    raise_sequence(device, 1)
    device.delete()

    assert not DesiredNotice.objects.exists()
    assert not RetiredTopic.objects.exists()
    assert jobs.publish_notices() == 0


def test_a_burst_of_commits_queues_one_job_until_it_starts(monkeypatch, db):
    queued: list[str] = []
    monkeypatch.setattr(services, "async_task", lambda func, **_: queued.append(func))

    services.request_publish()
    services.request_publish()
    assert queued == [PUBLISH_JOB]
    services.publish_started()
    services.request_publish()

    assert queued == [PUBLISH_JOB, PUBLISH_JOB]


def test_the_sweep_runs_every_minute(db):
    schedule = Schedule.objects.get(func=PUBLISH_JOB)

    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)


def test_the_admin_shows_the_backlog_of_a_broker_outage(admin_client, enroll, broker: Mosquitto):
    device, _ = enroll("pi-x")
    raise_sequence(device, 2)
    broker.stop()
    jobs.publish_notices()

    page = admin_client.get("/admin/notices/desirednotice/?state=failing")

    assert page.status_code == 200
    text = page.content.decode()
    assert "1 notices pending (1 after failed attempts, at most 1)" in text
    assert "cannot connect" in text and "pi-x" in text
    assert "/admin/notices/desirednotice/add/" not in text


def test_a_client_certificate_from_another_ca_is_refused_by_the_broker(broker: Mosquitto, tmp_path):
    certificate, key_pem = ThrowawayCA("not the device CA").issue("control-plane")
    (tmp_path / "stranger.pem").write_bytes(certificate)
    write_private(tmp_path / "stranger-key.pem", key_pem)
    context = ssl.create_default_context(cafile=str(broker.server_ca_file))
    context.load_cert_chain(tmp_path / "stranger.pem", tmp_path / "stranger-key.pem")

    # TLS 1.3 reports a refused client certificate on the first read, not in the handshake.
    with (
        socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError, match="unknown ca"),
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.recv(1)
