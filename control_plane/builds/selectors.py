"""Reading signed artifacts for desired states: one query per refresh, not per device."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact

SignedArtifacts = dict[tuple[int, str], dict[str, str]]
"""(version id, engine key) → the signed compiled statement's envelope."""


def signed_artifacts(version_ids: Iterable[int]) -> SignedArtifacts:
    """Every signed, ready artifact of these versions, by version and engine key."""
    found: SignedArtifacts = {}
    for version_id, engine_key, envelope in (
        CompiledArtifact.objects.filter(
            version_id__in=list(version_ids),
            state=ArtifactState.READY,
            envelope__isnull=False,
        )
        .order_by("pk")
        .values_list("version_id", "engine_key", "envelope")
    ):
        # Not null (filtered above), and shaped by the signer that stored it.
        found.setdefault((version_id, engine_key), cast("dict[str, str]", envelope))
    return found


def artifacts_for(
    signed: SignedArtifacts, version_ids: Iterable[int], engine_key: str
) -> list[dict[str, str]]:
    """The envelopes for one device's engine key, in the order of its releases."""
    if not engine_key:
        return []
    return [signed[key] for key in ((pk, engine_key) for pk in version_ids) if key in signed]
