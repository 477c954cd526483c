"""What a device reports happening to its plugins: one list both sides read."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """A device event's kind; the control plane stores unknown future kinds as ``other``."""

    INSTALLED = "installed"
    REFUSED = "refused"
    TRAPPED = "trapped"
    QUARANTINED = "quarantined"
    REMOVED = "removed"
    REVERTED = "reverted"
    DOWNLOAD_FAILED = "download-failed"
    """A signed release's bytes did not arrive intact; retried, never a refusal."""
    NO_ARTIFACT = "no-artifact"
    """No usable compiled artifact for the device's engine key came with a release."""
