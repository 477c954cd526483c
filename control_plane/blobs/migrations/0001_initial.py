import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="Blob",
            fields=[
                ("sha256", models.CharField(max_length=64, primary_key=True, serialize=False)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("component", "component (.wasm)"),
                            ("compiled", "compiled artifact (.cwasm)"),
                        ],
                        max_length=16,
                    ),
                ),
                ("size", models.PositiveBigIntegerField(help_text="Stored (compressed) bytes.")),
                ("raw_size", models.PositiveBigIntegerField(help_text="Bytes once decompressed.")),
                ("chunk_count", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["-created_at"]},
        ),
        migrations.CreateModel(
            name="BlobChunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("index", models.PositiveIntegerField()),
                ("data", models.BinaryField()),
                (
                    "blob",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="blobs.blob",
                    ),
                ),
            ],
            options={
                "ordering": ["blob", "index"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("blob", "index"), name="blobs_chunk_unique_index"
                    )
                ],
            },
        ),
    ]
