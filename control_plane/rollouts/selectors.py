"""Reads of rollouts: one rollout with its per-wave counts and decisions, for pages and CLI."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count

from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.choices import MemberState
from control_plane.rollouts.models import Rollout


def find_version(plugin: str, version: str) -> PluginVersion:
    found = (
        PluginVersion.objects.select_related("plugin")
        .filter(plugin__name=plugin, version=version)
        .first()
    )
    if found is None:
        raise ValidationError(f"no uploaded version {plugin} {version}")
    return found


def wave_counts(rollout: Rollout) -> list[dict[str, Any]]:
    """Each wave with how many of its devices are in each `MemberState`."""
    counts: dict[int, dict[str, int]] = {}
    for row in rollout.members.values("wave", "state").annotate(n=Count("pk")):
        counts.setdefault(row["wave"], {})[row["state"]] = row["n"]
    return [
        {
            "index": wave.index,
            "label": wave.label,
            "percent": wave.percent,
            "size": wave.size,
            "status": wave.status,
            "started_at": wave.started_at,
            "finished_at": wave.finished_at,
            "counts": {s.value: counts.get(wave.index, {}).get(s.value, 0) for s in MemberState},
        }
        for wave in rollout.wave_set.order_by("index")
    ]


def rollout_summary(rollout: Rollout) -> dict[str, Any]:
    """A rollout as ``manage.py rollout status`` prints it and the rollout page's JSON."""
    rollout = Rollout.objects.select_related("version__plugin", "release", "tag").get(pk=rollout.pk)
    return {
        "id": rollout.pk,
        "plugin": rollout.version.plugin.name,
        "version": rollout.version.version,
        "serial": rollout.release.serial if rollout.release else None,
        "target": rollout.target_label,
        "status": rollout.status,
        "halt_reason": rollout.halt_reason,
        "started_at": rollout.started_at,
        "finished_at": rollout.finished_at,
        "waves": wave_counts(rollout),
        "decisions": [
            {
                "at": d.at,
                "kind": d.kind,
                "wave": d.wave,
                "detail": d.detail,
                "counts": d.counts,
            }
            for d in rollout.decisions.order_by("at", "pk")
        ],
    }
