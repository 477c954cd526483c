from django.db import models


class BlobKind(models.TextChoices):
    """What a blob holds: an uploaded component, or one class's compiled machine code."""

    COMPONENT = "component", "component (.wasm)"
    COMPILED = "compiled", "compiled artifact (.cwasm)"
