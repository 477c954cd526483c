"""Enumerations the rollouts app stores."""

from django.db import models


class AssignmentTarget(models.TextChoices):
    """Which devices an assignment covers; a more specific target wins (device > tag > all)."""

    ALL = "all", "all devices"
    TAG = "tag", "devices with a tag"
    DEVICE = "device", "one device"


SPECIFICITY = {AssignmentTarget.ALL: 1, AssignmentTarget.TAG: 2, AssignmentTarget.DEVICE: 3}


class RolloutTarget(models.TextChoices):
    ALL = "all", "all devices"
    TAG = "tag", "devices with a tag"
    DEVICES = "devices", "a list of devices"


class RolloutStatus(models.TextChoices):
    """scheduled → running → paused / halted → completed / aborted / rolled back."""

    SCHEDULED = "scheduled", "scheduled"
    RUNNING = "running", "running"
    PAUSED = "paused", "paused"
    HALTED = "halted", "halted"
    COMPLETED = "completed", "completed"
    ABORTED = "aborted", "aborted"
    ROLLED_BACK = "rolled-back", "rolled back"


ACTIVE = (
    RolloutStatus.SCHEDULED,
    RolloutStatus.RUNNING,
    RolloutStatus.PAUSED,
    RolloutStatus.HALTED,
)
"""Statuses that hold their plugin and target: another rollout of both waits or is refused."""


class WaveStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    PASSED = "passed", "passed"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class MemberState(models.TextChoices):
    """Where one device of a rollout stands on the rollout's version."""

    PENDING = "pending", "pending"
    """Its wave has not started, or it has not been heard from since."""
    DOWNLOADING = "downloading", "downloading"
    """It heartbeated since its wave started but does not run the version yet."""
    INSTALLED = "installed", "installed"
    HEALTHY = "healthy", "healthy"
    """Runs the version within the rollout's thresholds for the whole soak time."""
    FAILED = "failed", "failed"
    REVERTED = "reverted", "reverted"
    """It went back to its previous version by itself (the version kept trapping)."""
    SKIPPED = "skipped", "skipped"
    """Not heard from within the wave's timeout: not waited for."""
    ROLLED_BACK = "rolled-back", "rolled back"


FAILED_STATES = (MemberState.FAILED, MemberState.REVERTED)


class OnTimeout(models.TextChoices):
    SKIP = "skip", "skip it"
    FAIL = "fail", "count it as failed"


class DecisionKind(models.TextChoices):
    CREATED = "created", "created"
    STARTED = "started", "started"
    WAVE_STARTED = "wave-started", "wave started"
    DELIVERED = "delivered", "desired states written"
    PROGRESS = "progress", "progress"
    SKIPPED = "skipped", "devices skipped"
    WAVE_PASSED = "wave-passed", "wave passed"
    HALTED = "halted", "halted"
    PAUSED = "paused", "paused"
    RESUMED = "resumed", "resumed"
    ABORTED = "aborted", "aborted"
    ROLLED_BACK = "rolled-back", "rolled back"
    COMPLETED = "completed", "completed"
