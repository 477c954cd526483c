"""The outbox of desired-state notices: one row per device, the newest sequence to announce.

A row is pending while ``sequence > published_sequence``. Writers only raise ``sequence``
(in the transaction that changes the desired state); the publisher claims a batch for a
lease, copies each row's sequence to ``claimed_sequence``, publishes, and then sets
``published_sequence`` to what it published, so a sequence raised meanwhile stays pending.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from control_plane.devices.models import Device

PENDING = Q(sequence__gt=F("published_sequence"))
"""The rows the worker still has to publish."""


class DesiredNotice(models.Model):
    """The "desired state N is ready" notice a device is owed on its MQTT topic."""

    device = models.OneToOneField(
        Device, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    sequence = models.PositiveBigIntegerField(help_text="The device's newest desired state.")
    published_sequence = models.PositiveBigIntegerField(
        default=0, help_text="The newest sequence the broker acknowledged."
    )
    updated_at = models.DateTimeField(help_text="When the sequence was last raised.")
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Failed publishing attempts since the last success."
    )
    last_error = models.CharField(max_length=300, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_sequence = models.PositiveBigIntegerField(default=0, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["updated_at"]
        indexes = [
            models.Index(fields=["updated_at"], condition=PENDING, name="notices_pending"),
            models.Index(fields=["claim"], condition=Q(claim__isnull=False), name="notices_claim"),
        ]

    def __str__(self) -> str:
        return f"desired state {self.sequence} for {self.device_id}"

    @property
    def pending(self) -> bool:
        return self.sequence > self.published_sequence


class PublishRequest(models.Model):
    """The one row that debounces publishing jobs: set when a job is queued, cleared when
    it starts, so a burst of commits queues one job and a commit during a run queues the
    next."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    requested_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"publish requested at {self.requested_at}"


class RetiredTopic(models.Model):
    """A deleted device's topic, kept until the broker has dropped its retained notice.

    Retained messages outlive the device they were for: without this, every deleted device
    would leave one on the broker for good. The row is written in the transaction that
    deletes the device (so a rolled-back deletion retires nothing); the publisher then sends
    the topic an empty retained message, which is how MQTT removes one, and deletes the row
    once the broker acknowledges it.
    """

    device_id = models.UUIDField(primary_key=True, help_text="The deleted device's id.")
    deleted_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(
        default=0, help_text="Failed attempts to clear the topic."
    )
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["deleted_at"]

    def __str__(self) -> str:
        return f"retained notice of deleted device {self.device_id}"
