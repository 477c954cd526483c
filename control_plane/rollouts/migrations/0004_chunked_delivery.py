"""Waves are delivered in chunks with a cursor, and stale desired states are recorded.

Waves started before this migration were delivered whole by the code that started them.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F


def delivered_before(apps: Any, schema_editor: Any) -> None:
    apps.get_model("rollouts", "Wave").objects.filter(started_at__isnull=False).update(
        delivered=F("size"), delivered_at=F("started_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0005_telemetry_budget_no_agent_url"),
        ("rollouts", "0003_device_releases_and_engine_tick"),
    ]

    operations = [
        migrations.CreateModel(
            name="StaleDesiredState",
            fields=[
                (
                    "device",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="devices.device",
                    ),
                ),
                ("since", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AddField(
            model_name="wave",
            name="delivered",
            field=models.PositiveIntegerField(
                default=0, help_text="Devices whose release and desired state are written."
            ),
        ),
        migrations.AddField(
            model_name="wave",
            name="delivered_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Every device's desired state written; judged after.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="wave",
            name="delivered_through",
            field=models.BigIntegerField(
                blank=True,
                help_text="The last member (by pk) delivered: the resume point.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="decision",
            name="kind",
            field=models.CharField(
                choices=[
                    ("created", "created"),
                    ("started", "started"),
                    ("wave-started", "wave started"),
                    ("delivered", "desired states written"),
                    ("progress", "progress"),
                    ("skipped", "devices skipped"),
                    ("wave-passed", "wave passed"),
                    ("halted", "halted"),
                    ("paused", "paused"),
                    ("resumed", "resumed"),
                    ("aborted", "aborted"),
                    ("rolled-back", "rolled back"),
                    ("completed", "completed"),
                ],
                max_length=12,
            ),
        ),
        migrations.RunPython(delivered_before, migrations.RunPython.noop),
    ]
