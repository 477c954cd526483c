"""The notice publisher's job, run by the django-q2 worker, never in a request.

`publish_notices` is queued after each commit that records notices or deletes a device
(debounced) and scheduled every minute as a sweep, so notices left pending by a broker
outage, a failed batch or a worker killed mid-batch are published later. A run connects
once and publishes batch after batch until nothing is pending, then clears the retained
notices of deleted devices; the first batch that fails ends the run.
"""

from __future__ import annotations

import logging
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from control_plane.notices.broker import ACK_TIMEOUT_S, BrokerError, NoticePublisher
from control_plane.notices.models import RetiredTopic
from control_plane.notices.selectors import claimable
from control_plane.notices.services import (
    claim_batch,
    fail_pending,
    publish_started,
    settle_batch,
    settle_retired,
)
from fleet_common.wire.channel import desired_topic
from fleet_common.wire.notices import Notice

log = logging.getLogger(__name__)

UNACKNOWLEDGED = f"the broker did not acknowledge within {ACK_TIMEOUT_S:g} s"


def publish_notices() -> int:
    """Publishes every pending notice, then clears the topics of deleted devices; returns
    how many notices the broker acknowledged."""
    if settings.MQTT_URL is None:
        return 0
    publish_started()
    if not claimable(timezone.now()).exists() and not RetiredTopic.objects.exists():
        return 0
    published = 0
    try:
        with NoticePublisher(settings.MQTT_URL, settings.MQTT_CA_FILE) as publisher:
            published, complete = _publish_pending(publisher)
            if complete:
                _clear_retired(publisher)
    except BrokerError as exc:
        oldest = (
            claimable(timezone.now()).order_by("updated_at").values("pk")[: settings.NOTICE_BATCH]
        )
        count = fail_pending(claimable(timezone.now()).filter(pk__in=oldest), str(exc))
        settle_retired([], _retired_batch(), str(exc))
        log.warning("publishing notices failed, %d stay pending: %s", count, exc)
    return published


def _publish_pending(publisher: NoticePublisher) -> tuple[int, bool]:
    """Publishes batch after batch; returns how many were acknowledged and whether the
    outbox emptied (False: a batch went partly unacknowledged, and the run stops)."""
    published = 0
    while True:
        claim, rows = claim_batch(settings.NOTICE_BATCH)
        if not rows:
            return published, True
        acked = publisher.publish(
            [(desired_topic(str(device)), Notice(sequence).to_bytes()) for device, sequence in rows]
        )
        failed = [device for (device, _), ok in zip(rows, acked, strict=True) if not ok]
        published += settle_batch(claim, failed, UNACKNOWLEDGED)
        if failed:
            log.warning(
                "%d of %d notices unacknowledged; they stay pending", len(failed), len(rows)
            )
            return published, False


def _retired_batch() -> list[UUID]:
    return list(
        RetiredTopic.objects.order_by("deleted_at").values_list("pk", flat=True)[
            : settings.NOTICE_BATCH
        ]
    )


def _clear_retired(publisher: NoticePublisher) -> None:
    """Sends each deleted device's topic an empty retained message, which drops its notice."""
    while batch := _retired_batch():
        acked = publisher.publish([(desired_topic(str(device)), b"") for device in batch])
        failed = [device for device, ok in zip(batch, acked, strict=True) if not ok]
        cleared = [device for device, ok in zip(batch, acked, strict=True) if ok]
        settle_retired(cleared, failed, UNACKNOWLEDGED)
        if failed:
            log.warning("%d deleted devices' topics not cleared yet", len(failed))
            return
