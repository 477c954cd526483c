"""The rollout pages: every rollout, one rollout's waves, timeline and decisions, and the
operator's buttons (pause, resume, abort, roll back), which call the services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from control_plane.devices.charts import Chart, line_chart
from control_plane.notices.selectors import backlog
from control_plane.rollouts import services
from control_plane.rollouts.choices import ACTIVE, DecisionKind, MemberState, RolloutStatus
from control_plane.rollouts.models import Decision, Member, Rollout
from control_plane.rollouts.selectors import delivery_progress, rollout_summary, wave_counts

PAGE_SIZE = 50
REFRESH_S = 5
TIMELINE = {
    "installed": (MemberState.INSTALLED,),
    "healthy": (MemberState.HEALTHY,),
    "failed": (MemberState.FAILED, MemberState.REVERTED),
}
"""The timeline's lines and the member states each one adds up (over every wave)."""
TIMELINE_COLORS = {"installed": "#7dd3fc", "healthy": "#86efac", "failed": "#f87171"}
MARKED = (
    DecisionKind.WAVE_STARTED,
    DecisionKind.WAVE_PASSED,
    DecisionKind.HALTED,
    DecisionKind.PAUSED,
    DecisionKind.RESUMED,
    DecisionKind.ABORTED,
    DecisionKind.ROLLED_BACK,
    DecisionKind.COMPLETED,
)

Action = Callable[..., Rollout]
ACTIONS: dict[str, tuple[Action, tuple[str, ...], str]] = {
    "pause": (
        services.pause_rollout,
        (RolloutStatus.RUNNING, RolloutStatus.SCHEDULED),
        "paused",
    ),
    "resume": (
        services.resume_rollout,
        (RolloutStatus.PAUSED, RolloutStatus.HALTED),
        "resumed",
    ),
    "abort": (services.abort_rollout, tuple(ACTIVE), "aborted"),
    "rollback": (
        services.roll_back_rollout,
        (*ACTIVE, RolloutStatus.COMPLETED, RolloutStatus.ABORTED),
        "rolled back",
    ),
}
"""Each button: the service it calls, the statuses it applies to, and what it did."""


@login_required
def rollout_list(request: HttpRequest) -> HttpResponse:
    """``/fleet/rollouts/``: every rollout, newest first, with its devices' states."""
    page = Paginator(
        Rollout.objects.select_related("version__plugin", "tag").order_by("-created_at", "-pk"),
        PAGE_SIZE,
    ).get_page(request.GET.get("page"))
    rollouts = list(page.object_list)
    tallies: dict[int, dict[str, int]] = {}
    for row in (
        Member.objects.filter(rollout__in=rollouts)
        .values("rollout_id", "state")
        .annotate(n=Count("pk"))
    ):
        tallies.setdefault(row["rollout_id"], {})[row["state"]] = row["n"]
    return render(
        request,
        "rollouts/list.html",
        {
            "page": page,
            "rows": [
                {
                    "rollout": rollout,
                    "devices": sum(tallies.get(rollout.pk, {}).values()),
                    "states": [
                        (state.value, state.label, tallies.get(rollout.pk, {}).get(state.value, 0))
                        for state in MemberState
                        if tallies.get(rollout.pk, {}).get(state.value)
                    ],
                }
                for rollout in rollouts
            ],
        },
    )


@login_required
def rollout_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``/fleet/rollouts/<pk>/``: waves with their devices' states, the timeline, the halt
    reason with its numbers, every decision, and the buttons that apply now."""
    rollout = get_object_or_404(
        Rollout.objects.select_related("version__plugin", "release", "tag"), pk=pk
    )
    decisions = list(rollout.decisions.select_related("by").order_by("at", "pk"))
    may_change = request.user.has_perm("rollouts.change_rollout")
    halted = next((d for d in reversed(decisions) if d.kind == DecisionKind.HALTED), None)
    return render(
        request,
        "rollouts/detail.html",
        {
            "rollout": rollout,
            "waves": wave_counts(rollout),
            "progress": delivery_progress(rollout),
            "notices": backlog(),
            "states": [(state.value, state.label) for state in MemberState],
            "decisions": [{"d": d, "numbers": _counted(d.counts)} for d in decisions],
            "halted": halted,
            "halt_counts": _counted(halted.counts) if halted else "",
            "chart": timeline_chart(decisions),
            "actions": [
                (name, done)
                for name, (_, allowed, done) in ACTIONS.items()
                if may_change and rollout.status in allowed
            ],
            "failed_members": Member.objects.filter(
                rollout=rollout, state__in=(MemberState.FAILED, MemberState.REVERTED)
            )
            .select_related("device")
            .order_by("wave", "device__name")[:20],
            "refresh_ms": REFRESH_S * 1000,
        },
    )


@login_required
def rollout_json(request: HttpRequest, pk: int) -> JsonResponse:
    """``/fleet/rollouts/<pk>.json``: `rollout_summary` and the notice backlog, for the
    page's refresh script."""
    rollout = get_object_or_404(Rollout, pk=pk)
    summary = rollout_summary(rollout)
    summary["notices_pending"] = backlog().pending
    return JsonResponse(summary)


def _action(name: str) -> Callable[[HttpRequest, int], HttpResponse]:
    service, _, done = ACTIONS[name]

    @require_POST
    @login_required
    @permission_required("rollouts.change_rollout", raise_exception=True)
    def act(request: HttpRequest, pk: int) -> HttpResponse:
        rollout = get_object_or_404(Rollout, pk=pk)
        try:
            service(rollout=rollout, by=request.user)
        except ValidationError as problem:
            messages.error(request, "; ".join(problem.messages))
        else:
            messages.success(request, f"Rollout #{rollout.pk} {done}.")
        return HttpResponseRedirect(reverse("rollouts:detail", args=[rollout.pk]))

    act.__name__ = act.__qualname__ = f"{name}_rollout"
    act.__doc__ = f"POST ``/fleet/rollouts/<pk>/{name}/``: the {name} button."
    return act


pause = _action("pause")
resume = _action("resume")
abort = _action("abort")
rollback = _action("rollback")


def timeline_chart(decisions: list[Decision]) -> Chart:
    """Installed, healthy and failed devices over time, summed over the waves.

    Each decision with a wave and counts is that wave's tally at that moment; a wave keeps
    its last tally until the next one, so the lines are what the rollout stood at.
    """
    by_wave: dict[int, dict[str, int]] = {}
    lines: dict[str, list[tuple[datetime, float]]] = {name: [] for name in TIMELINE}
    markers: list[tuple[datetime, str]] = []
    for decision in decisions:
        counts = decision.counts if isinstance(decision.counts, dict) else {}
        if decision.wave is not None and any(s in counts for s in MemberState.values):
            by_wave[decision.wave] = {k: int(v) for k, v in counts.items() if isinstance(v, int)}
            for name, states in TIMELINE.items():
                total = float(sum(t.get(s, 0) for t in by_wave.values() for s in states))
                if lines[name] and lines[name][-1][1] != total:
                    lines[name].append((decision.at, lines[name][-1][1]))  # a step, not a ramp
                lines[name].append((decision.at, total))
        if decision.kind in MARKED:
            markers.append((decision.at, f"{decision.at:%H:%M:%S} {decision.detail}"))
    now = ", ".join(f"{int(points[-1][1])} {name}" for name, points in lines.items() if points)
    return line_chart(
        "Devices on the version",
        "",
        lines,
        empty="no device reported yet",
        markers=markers,
        counts=True,
        colors=TIMELINE_COLORS,
        caption=f"last: {now}" if now else None,
    )


def _counted(counts: Any) -> str:
    """A decision's numbers in words: ``1 failed, 0 healthy of 1``."""
    if not isinstance(counts, dict):
        return ""
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n)
