"""The rollout engine's background jobs, run by the django-q2 worker, never in requests.

`evaluate_rollout` is queued when a device a running wave waits on heartbeats (at most once
a second per rollout); `tick`, scheduled every minute, evaluates every rollout that is due
or running, so soak times and wave timeouts end even when no device reports.
"""

from __future__ import annotations

import logging

from control_plane.rollouts.choices import RolloutStatus
from control_plane.rollouts.models import Rollout
from control_plane.rollouts.services import evaluate

log = logging.getLogger(__name__)


def evaluate_rollout(rollout_id: int) -> str:
    """One engine step for one rollout; returns its status afterwards (the job's result)."""
    return str(evaluate(rollout_id).status)


def tick() -> int:
    """Evaluates every scheduled or running rollout; returns how many."""
    ids = list(
        Rollout.objects.filter(
            status__in=(RolloutStatus.SCHEDULED, RolloutStatus.RUNNING)
        ).values_list("pk", flat=True)
    )
    for rollout_id in ids:
        try:
            evaluate(rollout_id)
        except Exception:  # one broken rollout must not stop the others' timers
            log.exception("evaluating rollout #%s failed", rollout_id)
    return len(ids)
