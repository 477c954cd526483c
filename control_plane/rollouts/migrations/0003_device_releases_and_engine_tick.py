"""What each device was last told to run becomes its `DeviceRelease` rows, and the rollout
engine's minute tick is scheduled.

The releases come from the device's signed desired state itself, so no device's plugins
change when the control plane is upgraded.
"""

import json
from typing import Any

from django.db import migrations

TICK = "control_plane.rollouts.jobs.tick"


def forwards(apps: Any, schema_editor: Any) -> None:
    device_model = apps.get_model("devices", "Device")
    release_model = apps.get_model("plugins", "Release")
    row_model = apps.get_model("rollouts", "DeviceRelease")
    for device in device_model.objects.exclude(desired_envelope=""):
        statement = json.loads(json.loads(device.desired_envelope)["statement"])
        versions = {}
        for envelope in statement.get("releases", []):
            signed = json.loads(envelope["statement"])
            release = (
                release_model.objects.filter(plugin__name=signed["plugin"], serial=signed["serial"])
                .select_related("version")
                .first()
            )
            if release is None:
                continue
            row_model.objects.get_or_create(
                device=device, plugin_id=release.plugin_id, defaults={"release": release}
            )
            versions[signed["plugin"]] = signed["version"]
        device.desired_versions = versions
        device.save(update_fields=["desired_versions"])
    schedule_model = apps.get_model("django_q", "Schedule")
    schedule_model.objects.get_or_create(
        func=TICK,
        defaults={
            "name": "rollout engine tick",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
            "cluster": "pi-fleet",
        },
    )


def backwards(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_q", "Schedule").objects.filter(func=TICK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("rollouts", "0002_rollouts"),
        ("plugins", "0004_releases_of_approved_versions"),
        ("devices", "0004_health_logs_drift"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
