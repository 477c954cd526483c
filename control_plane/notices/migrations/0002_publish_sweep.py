"""The notice publisher's sweep is scheduled every minute, so notices left pending by a
broker outage or a worker killed mid-batch are published without waiting for a new change."""

from typing import Any

from django.db import migrations

PUBLISH = "control_plane.notices.jobs.publish_notices"


def forwards(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_q", "Schedule").objects.get_or_create(
        func=PUBLISH,
        defaults={
            "name": "publish pending notices",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
            "cluster": "pi-fleet",
        },
    )


def backwards(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_q", "Schedule").objects.filter(func=PUBLISH).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notices", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
