"""The rollout pages: list, detail (waves, timeline, decisions, halt reason) and the
operator's buttons, on a real database with devices heartbeating through the real service."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission

from control_plane.devices.services import record_heartbeat
from control_plane.rollouts.choices import RolloutStatus, RolloutTarget
from control_plane.rollouts.models import Rollout
from control_plane.rollouts.services import assign_now, create_rollout
from fleet_common.wire.health import PluginHealth
from fleet_common.wire.heartbeat import EventReport, Heartbeat, PluginReport

pytestmark = pytest.mark.django_db


def beat(secret: str, version: str, *, health=None, events=()) -> None:  # type: ignore[no-untyped-def]
    record_heartbeat(
        device_token=secret,
        heartbeat=Heartbeat(
            host_version="0.1.0",
            engine=None,
            plugins=(PluginReport("hello", version, "a" * 64, "running"),),
            events=events,
            health=() if health is None else (health,),
        ),
    )


@pytest.fixture
def fleet(enroll, approved):
    """Four devices on hello 1.0.0, and an approved 1.1.0 (canary 1, then 1, then 2)."""
    devices = [enroll(f"pi-{n:02}") for n in range(4)]
    assign_now(version=approved("1.0.0"), target=RolloutTarget.ALL)
    for _, secret in devices:
        beat(secret, "1.0.0")
    return dict((d.pk, s) for d, s in devices), approved("1.1.0")


@pytest.fixture
def running(fleet) -> Rollout:
    _, version = fleet
    return create_rollout(version=version, target=RolloutTarget.ALL, soak_s=600)


@pytest.fixture
def operator(django_user_model):  # type: ignore[no-untyped-def]
    """A signed-in person who may look at rollouts but not change them."""
    return django_user_model.objects.create_user("viewer", password="x")


def canary_secret(fleet, rollout: Rollout) -> str:  # type: ignore[no-untyped-def]
    secrets, _ = fleet
    return secrets[rollout.members.get(wave=0).device_id]


def test_the_rollout_pages_require_login(client, running):
    for url in ("/fleet/rollouts/", f"/fleet/rollouts/{running.pk}/"):
        assert client.get(url).status_code == 302


def test_the_list_shows_each_rollout_with_its_status_and_devices(admin_client, running):
    page = admin_client.get("/fleet/rollouts/").content.decode()

    assert f'href="/fleet/rollouts/{running.pk}/"' in page
    assert '<span class="badge running">running</span>' in page
    assert "hello 1.1.0" in page and "all devices" in page
    assert '<span class="badge pending">' in page


def test_the_detail_shows_waves_with_their_counts_and_the_decisions(admin_client, fleet, running):
    beat(canary_secret(fleet, running), "1.1.0", health=PluginHealth("hello", "1.1.0", requests=5))

    page = admin_client.get(f"/fleet/rollouts/{running.pk}/").content.decode()

    waves = page[page.index('id="waves"') : page.index("<h2>Timeline")]
    assert waves.count("<tr>") == 1 + 3  # header and canary, wave 2, wave 3
    assert "canary" in waves and '<span class="badge running">running</span>' in waves
    assert "<th>installed</th>" in waves and "<th>rolled back</th>" in waves
    assert "wave started" in page and "canary: 1 devices get hello 1.1.0" in page
    assert "canary: 1 installed" in page
    assert "<polyline" in page and 'class="marker"' in page  # the timeline and its decisions


def test_buttons_show_only_when_they_apply(admin_client, running):
    page = admin_client.get(f"/fleet/rollouts/{running.pk}/").content.decode()

    assert f'action="/fleet/rollouts/{running.pk}/pause/"' in page
    assert f'action="/fleet/rollouts/{running.pk}/abort/"' in page
    assert f'action="/fleet/rollouts/{running.pk}/rollback/"' in page
    assert "/resume/" not in page


def test_a_person_without_the_permission_sees_no_buttons_and_cannot_post(client, operator, running):
    client.force_login(operator)

    page = client.get(f"/fleet/rollouts/{running.pk}/").content.decode()
    answer = client.post(f"/fleet/rollouts/{running.pk}/pause/")

    assert "/pause/" not in page and answer.status_code == 403
    assert Rollout.objects.get(pk=running.pk).status == RolloutStatus.RUNNING


def test_a_person_with_the_permission_may_pause(client, operator, running):
    operator.user_permissions.add(Permission.objects.get(codename="change_rollout"))
    client.force_login(operator)

    answer = client.post(f"/fleet/rollouts/{running.pk}/pause/", follow=True)

    assert Rollout.objects.get(pk=running.pk).status == RolloutStatus.PAUSED
    assert f"Rollout #{running.pk} paused." in answer.content.decode()


def test_actions_are_post_only(admin_client, running):
    assert admin_client.get(f"/fleet/rollouts/{running.pk}/abort/").status_code == 405
    assert Rollout.objects.get(pk=running.pk).status == RolloutStatus.RUNNING


def test_pause_resume_abort_change_the_status_and_show_it(admin_client, running):
    url = f"/fleet/rollouts/{running.pk}"

    admin_client.post(f"{url}/pause/")
    paused = admin_client.get(f"{url}/").content.decode()
    admin_client.post(f"{url}/resume/")
    resumed = Rollout.objects.get(pk=running.pk).status
    admin_client.post(f"{url}/abort/")
    aborted = admin_client.get(f"{url}/").content.decode()

    assert f'action="{url}/resume/"' in paused and f'action="{url}/pause/"' not in paused
    assert resumed == RolloutStatus.RUNNING
    assert '<span class="badge aborted" id="status">aborted</span>' in aborted
    assert f'action="{url}/rollback/"' in aborted and f'action="{url}/abort/"' not in aborted
    assert "aborted by admin" in aborted


def test_rolling_back_from_the_page_puts_devices_back(admin_client, running):
    answer = admin_client.post(f"/fleet/rollouts/{running.pk}/rollback/", follow=True)

    assert Rollout.objects.get(pk=running.pk).status == RolloutStatus.ROLLED_BACK
    page = answer.content.decode()
    assert "rolled back." in page and "rolled back by admin: 1 devices back on 1.0.0" in page
    assert "<button" not in page.split("<main>")[1].split("<h2>")[0]  # nothing applies now


def test_an_action_that_no_longer_applies_says_why(admin_client, running):
    answer = admin_client.post(f"/fleet/rollouts/{running.pk}/resume/", follow=True)

    assert "cannot resume" in answer.content.decode() and "it is running" in answer.content.decode()
    assert Rollout.objects.get(pk=running.pk).status == RolloutStatus.RUNNING


def test_a_halt_is_explained_in_words_with_its_numbers(admin_client, fleet):
    _, version = fleet
    rollout = create_rollout(
        version=version, target=RolloutTarget.ALL, soak_s=600, auto_rollback=False
    )
    reverted = EventReport(
        datetime.now(UTC), "hello", "1.1.0", "reverted", "1.1.0 kept trapping in probation"
    )
    beat(
        canary_secret(fleet, rollout),
        "1.0.0",
        health=PluginHealth("hello", "1.1.0", requests=12, errors=3, traps={"crash": 3}),
        events=(reverted,),
    )

    page = admin_client.get(f"/fleet/rollouts/{rollout.pk}/").content.decode()

    assert '<span class="badge halted" id="status">halted</span>' in page
    assert "canary halted: 1 of 1 devices failed (halts at 5 devices or 10 %)" in page
    assert "the wave stood at: 1 reverted" in page
    assert "1.1.0 kept trapping in probation" in page
    assert "/resume/" in page and "/rollback/" in page and "/pause/" not in page


def test_the_json_variant_carries_the_summary_for_refresh(admin_client, running):
    summary = admin_client.get(f"/fleet/rollouts/{running.pk}.json").json()

    assert summary["status"] == "running" and summary["version"] == "1.1.0"
    assert [w["label"] for w in summary["waves"]] == ["canary", "wave 2", "wave 3"]
    assert summary["waves"][0]["counts"]["pending"] == 1
    assert summary["decisions"][0]["kind"] == "created"


def test_an_unknown_rollout_is_404(admin_client):
    assert admin_client.get("/fleet/rollouts/999999/").status_code == 404
    assert admin_client.post("/fleet/rollouts/999999/pause/").status_code == 404


def test_a_device_page_lists_the_rollouts_it_is_in(admin_client, running):
    canary = running.members.get(wave=0)

    page = admin_client.get(f"/fleet/devices/{canary.device_id}/").content.decode()

    rollouts = page[page.index("Rollouts it is in") : page.index("Install history")]
    assert f'href="/fleet/rollouts/{running.pk}/">#{running.pk} hello 1.1.0</a>' in rollouts
    assert "canary" in rollouts and '<span class="badge pending">pending</span>' in rollouts
