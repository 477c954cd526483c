"""The rollout engine's background jobs, run by the django-q2 worker, never in requests.

`evaluate_rollout` is queued when a rollout is created or resumed and when a device a
running wave waits on heartbeats (at most once a second per rollout); it plans waves,
delivers them chunk by chunk and judges them. `refresh_stale_desired_states` rebuilds the
desired states a rollback, an uninstall or newly signed artifacts left stale. `tick`,
scheduled every minute, does both for whatever is due, so soak times and wave timeouts
end when no device reports, and a job whose worker died is finished within a minute.
"""

from __future__ import annotations

import logging

from control_plane.rollouts.choices import RolloutStatus
from control_plane.rollouts.desired import refresh_stale
from control_plane.rollouts.models import Rollout
from control_plane.rollouts.services import evaluate

log = logging.getLogger(__name__)


def evaluate_rollout(rollout_id: int) -> str:
    """Engine steps and deliveries for one rollout; returns its status afterwards."""
    return str(evaluate(rollout_id).status)


def refresh_stale_desired_states() -> int:
    """Rebuilds every stale desired state; returns how many changed."""
    return refresh_stale()


def tick() -> int:
    """Rebuilds stale desired states, then evaluates every scheduled or running rollout;
    returns how many rollouts."""
    try:
        refresh_stale()
    except Exception:  # the rollouts' timers must run even when a rebuild fails
        log.exception("rebuilding stale desired states failed")
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
