"""Reads of the outbox: what the worker may claim, and the operator's view of a backlog."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, Q, QuerySet

from control_plane.notices.models import PENDING, DesiredNotice, RetiredTopic


def claimable(now: datetime) -> QuerySet[DesiredNotice]:
    """Pending notices no worker holds a live claim on."""
    return DesiredNotice.objects.filter(PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


@dataclass(frozen=True)
class Backlog:
    """How far the broker is behind: what an operator looks at during an outage."""

    pending: int
    failing: int
    """Pending notices whose last attempt failed."""
    most_attempts: int
    oldest: datetime | None
    retired: int
    """Deleted devices' topics whose retained notice the broker still holds."""


def backlog() -> Backlog:
    pending = DesiredNotice.objects.filter(PENDING)
    figures = pending.aggregate(most_attempts=Max("attempts"))
    oldest = pending.order_by("updated_at").values_list("updated_at", flat=True).first()
    return Backlog(
        pending=pending.count(),
        failing=pending.filter(attempts__gt=0).count(),
        most_attempts=figures["most_attempts"] or 0,
        oldest=oldest,
        retired=RetiredTopic.objects.count(),
    )
