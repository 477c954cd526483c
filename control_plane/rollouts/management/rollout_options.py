"""What the commands that start rollouts share: the rollout settings, and ``--wait``."""

from __future__ import annotations

import time
from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from control_plane.rollouts.choices import RolloutStatus
from control_plane.rollouts.models import Rollout

WAIT_DEFAULT_S = 600.0
"""``--wait`` with no number: 10,000 devices' desired states take well under a minute."""
POLL_S = 0.2


def _waves(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ArgumentTypeError(f"{text!r}: waves are percentages like 5,25,100") from None


def add_rollout_options(parser: CommandParser) -> None:
    parser.add_argument("--waves", type=_waves, help="cumulative percentages (default 5,25,100)")
    parser.add_argument("--soak", type=int, dest="soak_s", help="seconds each wave stays healthy")
    parser.add_argument("--wave-timeout", type=int, dest="wave_timeout_s", help="seconds")
    parser.add_argument("--success-pct", type=float, help="healthy share a wave needs")
    parser.add_argument("--error-count", type=int, help="failed devices that halt it")
    parser.add_argument("--error-pct", type=float, help="failed share of a wave that halts it")
    parser.add_argument("--max-traps", type=int, help="traps a device may have")
    parser.add_argument(
        "--no-auto-rollback",
        dest="auto_rollback",
        action="store_false",
        default=None,
        help="on a halt, wait for an operator instead of rolling back",
    )


def rollout_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The `Rollout` fields the options set; the model's defaults fill the rest."""
    names = (
        "waves",
        "soak_s",
        "wave_timeout_s",
        "success_pct",
        "error_count",
        "error_pct",
        "max_traps",
        "auto_rollback",
    )
    return {name: options[name] for name in names if options.get(name) is not None}


def add_wait_option(parser: CommandParser, flag: str = "--wait") -> None:
    parser.add_argument(
        flag,
        dest="wait_delivered",
        type=float,
        nargs="?",
        const=WAIT_DEFAULT_S,
        default=None,
        metavar="SECONDS",
        help="block until the first wave's desired states are written, at most SECONDS "
        f"(default {WAIT_DEFAULT_S:g}); without it, it returns once the rollout is recorded",
    )


def wait_until_delivered(rollout: Rollout, timeout_s: float) -> Rollout:
    """The rollout once the job worker wrote its running wave's desired states (or it
    stopped: completed, halted, aborted); raises CommandError naming the worker on timeout.

    A rollout scheduled for later is returned at once: nothing is written before its start.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        rollout.refresh_from_db()
        if rollout.scheduled_at is not None and rollout.scheduled_at > timezone.now():
            return rollout
        if rollout.status not in (RolloutStatus.SCHEDULED, RolloutStatus.RUNNING):
            return rollout
        if rollout.wave_set.filter(delivered_at__isnull=False).exists() or (
            rollout.status == RolloutStatus.RUNNING and not rollout.wave_set.exists()
        ):
            return rollout
        if time.monotonic() > deadline:
            raise CommandError(
                f"{rollout} has no desired states written after {timeout_s:g} s: is the job "
                "worker (manage.py qcluster) running? The rollout stays recorded; its page "
                "shows the progress."
            )
        time.sleep(POLL_S)
