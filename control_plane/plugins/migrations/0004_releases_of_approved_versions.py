"""Every approved version's release becomes a `Release` row, under the serial it has."""

from typing import Any

from django.db import migrations


def forwards(apps: Any, schema_editor: Any) -> None:
    version_model = apps.get_model("plugins", "PluginVersion")
    release_model = apps.get_model("plugins", "Release")
    for version in version_model.objects.filter(status="approved", serial__isnull=False):
        release_model.objects.get_or_create(
            plugin_id=version.plugin_id,
            serial=version.serial,
            defaults={
                "version": version,
                "envelope": version.release_envelope,
                "reason": "approved",
            },
        )


class Migration(migrations.Migration):
    dependencies = [("plugins", "0003_release")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
