"""Writes to the outbox: recording notices with desired-state changes, claiming and settling
the worker's batches, and granting devices their channel certificate.

`record_notices` runs inside the transaction that raises the devices' sequences, so a notice
exists exactly when the change does; publishing is queued once that transaction commits.
The worker claims a batch for a lease (so two workers never publish the same rows, and a
worker killed mid-batch leaves its rows to the next sweep), then settles it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from django.conf import settings
from django.db import connection, transaction
from django.db.models import DateTimeField, F, Field, Q, Subquery
from django.db.models.functions import Greatest
from django.utils import timezone
from django_q.tasks import async_task

from control_plane.devices.models import Device
from control_plane.notices.models import DesiredNotice, PublishRequest, RetiredTopic
from control_plane.notices.selectors import claimable
from control_plane.signing import issue_device_certificate
from fleet_common.wire.channel import ChannelGrant, desired_topic

log = logging.getLogger(__name__)

PUBLISH_JOB = "control_plane.notices.jobs.publish_notices"
PUBLISH_DEBOUNCE = timedelta(seconds=5)
"""A queued job that has not started within this is presumed lost, and another is queued."""
CLAIM_LEASE = timedelta(minutes=2)
"""How long a batch is a worker's; longer than the publisher's bounded waits together."""
MAX_ERROR_CHARS = 300


def record_notices(devices: Sequence[Device]) -> None:
    """Records that each device's desired state is now ``device.desired_sequence``, in the
    caller's transaction, and queues publishing for when it commits. No broker: nothing.

    The caller holds the devices' rows meanwhile (heartbeats of those devices wait), so
    this is one multi-row upsert per `UPSERT_ROWS` devices, its parameters converted as the
    fields save them: no model instances, and one statement for the server to run
    (``bulk_create`` took twice as long for 500 rows on PostgreSQL, one ``executemany``
    of single-row upserts three times as long)."""
    if settings.MQTT_URL is None or not devices:
        return
    meta = DesiredNotice._meta
    key, updated = meta.pk, meta.get_field("updated_at")
    assert key is not None and isinstance(updated, DateTimeField)
    now = updated.get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:
        for start in range(0, len(devices), UPSERT_ROWS):
            batch = devices[start : start + UPSERT_ROWS]
            params: list[Any] = []
            for device in batch:
                params += [
                    key.get_db_prep_save(device.pk, connection),
                    device.desired_sequence,
                    now,
                ]
            cursor.execute(_upsert_sql(len(batch)), params)
    transaction.on_commit(request_publish, robust=True)


UPSERT_ROWS = 500
"""Rows per upsert statement: 1,500 parameters, well inside SQLite's and psycopg's limits."""


def _upsert_sql(rows: int) -> str:
    """A new row owes its sequence and has published nothing; an existing row has its
    sequence raised (a sequence only grows: the caller locked the device's row)."""
    quote = connection.ops.quote_name
    meta = DesiredNotice._meta
    column = {}
    for name in _NOTICE_COLUMNS:
        field = meta.get_field(name)
        assert isinstance(field, Field) and field.column is not None
        column[name] = quote(field.column)
    values = ", ".join(["(%s, %s, %s, 0, 0, '', 0)"] * rows)
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(column.values())}) "
        f"VALUES {values} ON CONFLICT ({column['device']}) DO UPDATE SET "
        f"{column['sequence']} = excluded.{column['sequence']}, "
        f"{column['updated_at']} = excluded.{column['updated_at']}"
    )


_NOTICE_COLUMNS = (
    "device",
    "sequence",
    "updated_at",
    "published_sequence",
    "attempts",
    "last_error",
    "claimed_sequence",
)
"""In `_upsert_sql`'s VALUES order: the three written per row, then the constant defaults."""


def request_publish() -> None:
    """Queues one publishing job, unless one is already queued and not yet started."""
    if settings.MQTT_URL is None:
        return
    now = timezone.now()
    claimed = (
        PublishRequest.objects.filter(pk=1)
        .filter(Q(requested_at__isnull=True) | Q(requested_at__lt=now - PUBLISH_DEBOUNCE))
        .update(requested_at=now)
    )
    if not claimed:
        _, claimed = PublishRequest.objects.get_or_create(pk=1, defaults={"requested_at": now})
    if claimed:
        async_task(PUBLISH_JOB, group="notices", task_name="publish notices")


def publish_started() -> None:
    """The job began: a commit from now on needs a job of its own."""
    PublishRequest.objects.filter(pk=1).update(requested_at=None)


def claim_batch(limit: int) -> tuple[UUID, list[tuple[Any, int]]]:
    """Claims up to ``limit`` pending notices, oldest first; returns the claim and each
    row's device id and the sequence to publish for it."""
    now = timezone.now()
    token = uuid4()
    rows = claimable(now)
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            # PostgreSQL: a second worker skips the rows the first is claiming.
            ids = list(
                rows.select_for_update(skip_locked=True)
                .order_by("updated_at")
                .values_list("pk", flat=True)[:limit]
            )
            target = rows.filter(pk__in=ids)
        else:
            # SQLite: one UPDATE takes the write lock, so claims are serialised.
            target = rows.filter(pk__in=Subquery(rows.order_by("updated_at").values("pk")[:limit]))
        target.update(claim=token, claimed_sequence=F("sequence"), claimed_until=now + CLAIM_LEASE)
    claimed = list(
        DesiredNotice.objects.filter(claim=token).values_list("device_id", "claimed_sequence")
    )
    return token, claimed


def settle_batch(claim: UUID, failed: Sequence[Any], error: str) -> int:
    """Releases a claimed batch: ``failed`` device ids count an attempt and keep ``error``;
    the others are published at the sequence claimed (a newer one stays pending). Returns
    how many were published."""
    now = timezone.now()
    if failed:
        fail_pending(DesiredNotice.objects.filter(claim=claim, pk__in=failed), error)
    return DesiredNotice.objects.filter(claim=claim).update(
        published_sequence=Greatest(F("published_sequence"), F("claimed_sequence")),
        published_at=now,
        attempts=0,
        last_error="",
        claim=None,
        claimed_until=None,
    )


def fail_pending(rows: Any, error: str) -> int:
    """Counts a failed attempt on ``rows`` (a queryset of notices) and releases their claim."""
    return int(
        rows.update(
            attempts=F("attempts") + 1,
            last_error=error[:MAX_ERROR_CHARS],
            claim=None,
            claimed_until=None,
        )
    )


def retire_topic(device_id: UUID) -> None:
    """Records, in the caller's transaction, that the deleted device ``device_id``'s topic
    must lose its retained notice, and queues publishing for when it commits."""
    if settings.MQTT_URL is None:
        return
    RetiredTopic.objects.update_or_create(
        device_id=device_id, defaults={"deleted_at": timezone.now()}
    )
    transaction.on_commit(request_publish, robust=True)


def settle_retired(cleared: Sequence[UUID], failed: Sequence[UUID], error: str) -> int:
    """Forgets the topics the broker cleared; counts an attempt and keeps ``error`` on the
    ``failed`` ones. Returns how many were cleared."""
    if failed:
        RetiredTopic.objects.filter(pk__in=failed).update(
            attempts=F("attempts") + 1, last_error=error[:MAX_ERROR_CHARS]
        )
    deleted, _ = RetiredTopic.objects.filter(pk__in=cleared).delete()
    return deleted


def grant_channel(device: Device, csr_pem: str) -> dict[str, object] | None:
    """The ``channel`` a device is granted for ``csr_pem`` (a client certificate for its
    own topic), as JSON; None when the control plane has no broker.

    Raises `CertificateRequestRefused` for a CSR the device CA does not sign, and
    `DeviceCAError` when the device CA is missing.
    """
    if settings.MQTT_URL is None:
        return None
    device_id = str(device.pk)
    certificate, expires_at = issue_device_certificate(csr_pem, device_id)
    grant = ChannelGrant(
        broker_url=settings.MQTT_URL,
        topic=desired_topic(device_id),
        certificate=certificate,
        expires_at=expires_at,
    )
    log.info("granted device %s a channel certificate until %s", device_id, expires_at)
    return grant.to_json()
