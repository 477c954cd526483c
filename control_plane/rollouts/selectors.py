"""Reads of rollouts: one rollout with its per-wave counts and decisions, for pages and CLI."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils import timezone

from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.choices import MemberState, RolloutStatus, WaveStatus
from control_plane.rollouts.models import Rollout, StaleDesiredState


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
            "delivered": wave.delivered,
            "delivered_at": wave.delivered_at,
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
        "progress": delivery_progress(rollout),
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


def delivery_progress(rollout: Rollout) -> dict[str, Any]:
    """Where the worker stands with the rollout's desired states, in words and numbers.

    ``phase`` is ``scheduled`` (a later start), ``planning`` (queued for the worker, waves
    not planned yet), ``delivering`` (a wave's desired states being written: ``delivered``
    of ``devices``), ``delivered`` (the running wave is written; the engine judges it) or
    ``idle`` (no wave running). ``stale`` counts the rollout's devices whose desired state
    a rollback left to rebuild.
    """
    found: dict[str, Any] = {"phase": "idle", "delivered": 0, "devices": 0, "wave": None}
    if rollout.status == RolloutStatus.SCHEDULED and rollout.started_at is None:
        later = rollout.scheduled_at is not None and rollout.scheduled_at > timezone.now()
        found["phase"] = "scheduled" if later else "planning"
    wave = rollout.wave_set.filter(status=WaveStatus.RUNNING).order_by("index").first()
    if wave is not None:
        found.update(
            phase="delivering" if wave.delivered_at is None else "delivered",
            delivered=wave.delivered,
            devices=wave.size,
            wave=wave.label,
        )
    found["stale"] = StaleDesiredState.objects.filter(
        device_id__in=rollout.members.values("device_id")
    ).count()
    found["text"] = _progress_text(found)
    return found


def _progress_text(progress: dict[str, Any]) -> str:
    phase = progress["phase"]
    if phase == "planning":
        text = "planning: the worker plans the waves"
    elif phase == "scheduled":
        text = "scheduled: not planned before its start"
    elif phase in ("delivering", "delivered"):
        text = (
            f"{progress['wave']}: {progress['delivered']} of {progress['devices']} devices "
            "updated" + ("" if phase == "delivering" else ", judged now")
        )
    else:
        text = "no wave running"
    if progress["stale"]:
        text += f"; {progress['stale']} desired states to rebuild"
    return text
