"""The device classes compiled for out of the box: both CPU baselines, and a Pi 5 opt-in."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

DEFAULT_CLASSES = [
    ("x86_64", "x86_64-unknown-linux-gnu", [], True, "Any x86_64 machine (developers, CI)"),
    (
        "aarch64",
        "aarch64-unknown-linux-gnu",
        [],
        True,
        "Every 64-bit Raspberry Pi: Zero 2 W, 3, 4, 5 (ARMv8.0 baseline)",
    ),
    (
        "pi5",
        "aarch64-unknown-linux-gnu",
        ["has_dotprod", "has_fp16", "has_lse", "has_rcpc"],
        False,
        "Raspberry Pi 5 only (Cortex-A76 features); its devices must enable the same features",
    ),
]


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    DeviceClass = apps.get_model("builds", "DeviceClass")
    for name, target, features, enabled, description in DEFAULT_CLASSES:
        DeviceClass.objects.get_or_create(
            name=name,
            defaults={
                "target": target,
                "features": features,
                "enabled": enabled,
                "description": description,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("builds", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
