"""Which devices go in which wave: deterministic, and spread over tags and models.

Devices are grouped by (model, first tag) and the groups interleaved, so a canary of five
devices out of a fleet of kitchens and greenhouses has both. Within a group the order is
a hash of the rollout and device ids: the same rollout always picks the same devices, and
another rollout picks others, so no device is everyone's canary.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest


@dataclass(frozen=True)
class Candidate:
    device_id: str
    model: str
    """What the device runs on (its engine target), so waves cover every kind of Pi."""
    group: str
    """Its first tag, or empty."""


def wave_sizes(total: int, waves: Sequence[float]) -> list[int]:
    """Devices per wave for cumulative ``waves`` percentages; the canary has at least one.

    Each wave has at least one device while any are left, so a small fleet still goes
    through every gate; waves that would be empty are dropped (sizes sum to ``total``).
    """
    sizes, done = [], 0
    for percent in waves:
        upto = min(total, max(done + 1, math.ceil(total * percent / 100)))
        if upto > done:
            sizes.append(upto - done)
            done = upto
    return sizes


def plan(rollout_id: int, candidates: Sequence[Candidate]) -> list[Candidate]:
    """``candidates`` in wave order: groups interleaved, each in its hash order."""
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault((candidate.model, candidate.group), []).append(candidate)
    for members in groups.values():
        members.sort(key=lambda c: _rank(rollout_id, c.device_id))
    ordered = sorted(groups.values(), key=lambda m: (-len(m), _rank(rollout_id, m[0].device_id)))
    return [c for row in zip_longest(*ordered) for c in row if c is not None]


def _rank(rollout_id: int, device_id: str) -> str:
    return hashlib.sha256(f"{rollout_id}:{device_id}".encode()).hexdigest()
