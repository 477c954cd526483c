"""The rollout settings the ``rollout start`` and ``publish_plugin`` commands share."""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import CommandParser


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
