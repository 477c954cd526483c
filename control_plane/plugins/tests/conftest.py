"""Fixtures of the plugins' tests: what the control plane stored."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.models import Blob


@pytest.fixture
def artifacts(db) -> Callable[[], list[str]]:
    """Lists the SHA-256 of each component the test's control plane holds."""
    return lambda: sorted(
        Blob.objects.filter(kind=BlobKind.COMPONENT).values_list("sha256", flat=True)
    )
