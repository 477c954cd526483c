"""What the control plane knows about each device, and what devices reported."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from control_plane.devices.choices import Connectivity, EventKind
from fleet_common.wire.health import TRAP_KINDS

OFFLINE_GRACE_S = 5.0


def offline_after() -> timedelta:
    """How long after its last heartbeat a device counts as offline: two misses plus 5 s."""
    return timedelta(seconds=2 * settings.HEARTBEAT_INTERVAL_S + OFFLINE_GRACE_S)


class Tag(models.Model):
    """A label on devices (``greenhouse``, ``canary``) that rollouts can target."""

    name = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EnrollmentToken(models.Model):
    """A secret that lets a new device enroll a limited number of times before it expires.

    Only the SHA-256 of the token is stored; the token itself is shown once, at creation.
    """

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    label = models.CharField(max_length=100)
    uses_left = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.label

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class Device(models.Model):
    """A Raspberry Pi running the device host, enrolled in the fleet.

    Only the SHA-256 of its bearer token is stored. The signed desired state is cached
    here, exactly as signed, so a heartbeat answers with it without signing anything.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    tags = models.ManyToManyField(Tag, blank=True, related_name="devices")
    host_version = models.CharField(max_length=64, blank=True)
    engine_key = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Which compiled artifacts the device's engine loads (it reports it).",
    )
    engine_target = models.CharField(max_length=40, blank=True)
    engine_features = models.JSONField(default=list, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    enrolled_at = models.DateTimeField(auto_now_add=True)
    enrolled_with = models.ForeignKey(
        EnrollmentToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="devices"
    )
    last_seen = models.DateTimeField(null=True, blank=True)
    reported_plugins = models.JSONField(
        default=list, blank=True, help_text="The plugins list of the last heartbeat."
    )
    last_reading = models.JSONField(null=True, blank=True)
    desired_sequence = models.PositiveBigIntegerField(default=0)
    desired_envelope = models.TextField(
        blank=True, help_text="The signed desired-state envelope, as JSON text."
    )
    maintenance = models.CharField(
        max_length=200,
        blank=True,
        help_text="Work under way on the device (a host upgrade): downtime is expected.",
    )
    maintenance_since = models.DateTimeField(null=True, blank=True)
    desired_versions = models.JSONField(
        default=dict, blank=True, help_text="Plugin → version its desired state names."
    )
    drifting = models.BooleanField(
        default=False, db_index=True, help_text="It does not run what its desired state names."
    )
    failing = models.BooleanField(
        default=False, db_index=True, help_text="A plugin of its last heartbeat is not running."
    )
    in_rollout = models.BooleanField(
        default=False,
        help_text="A running rollout waits on its heartbeats (set by rollouts).",
    )
    vitals = models.JSONField(null=True, blank=True, help_text="IP, OS, uptime, memory, disk.")
    telemetry_window_start = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When its current telemetry hour began."
    )
    telemetry_bytes = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Heartbeat bytes it sent in that hour."
    )

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["last_seen"], name="devices_device_last_seen"),
            models.Index(fields=["name"], name="devices_device_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def connectivity(self, now: datetime | None = None) -> Connectivity:
        now = now or timezone.now()
        if self.last_seen is not None and now - self.last_seen <= offline_after():
            return Connectivity.ONLINE
        return Connectivity.MAINTENANCE if self.maintenance else Connectivity.OFFLINE

    @property
    def desired_statement(self) -> dict[str, Any] | None:
        """The desired-state statement this device was last given (already signed)."""
        if not self.desired_envelope:
            return None
        statement: dict[str, Any] = json.loads(json.loads(self.desired_envelope)["statement"])
        return statement


class Reading(models.Model):
    """One temperature and humidity sample a device reported.

    The unique (device, taken_at, source) makes a retried heartbeat store nothing twice and
    serves "the latest readings of a device" through its prefix. Every heartbeat inserts
    here, so retention needs no index of its own on PostgreSQL, where the table is
    partitioned by day (migration 0006, `retention`) and old days are dropped whole; on
    SQLite that migration adds an index on ``taken_at`` so pruning deletes in indexed batches.
    Django does not know about either: its view of the table (primary key ``id``) holds.
    """

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="readings", db_index=False
    )
    source = models.CharField(max_length=64)
    temperature_c = models.FloatField()
    humidity_pct = models.FloatField()
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "taken_at", "source"], name="devices_reading_unique_sample"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.temperature_c} °C {self.humidity_pct} % at {self.taken_at}"


class DeviceEvent(models.Model):
    """Something that happened to a plugin on a device: installed, refused, trapped, …

    Devices re-send events until a heartbeat is acknowledged; the unique (device, at,
    plugin, kind) stores each once and serves "recent events of a device".
    """

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    at = models.DateTimeField()
    plugin = models.CharField(max_length=64)
    version = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "at", "plugin", "kind"], name="devices_event_unique_report"
            )
        ]
        indexes = [
            # "Which devices failed version V", for rollouts and the version pages.
            models.Index(fields=["plugin", "version", "kind"], name="devices_event_outcome"),
            # Retention deletes the oldest in batches, walking this.
            models.Index(fields=["at"], name="devices_event_at"),
        ]

    def __str__(self) -> str:
        return f"{self.plugin} {self.version} {self.kind}"


class PluginHealth(models.Model):
    """What one plugin version did on one device, summed over its heartbeats.

    Devices send counters since their last acknowledged heartbeat; they are added up here,
    so a rollout compares what a version did since its wave started with a baseline. Each
    trap kind has its own column, so a heartbeat adds to them in one upsert, reading nothing.
    """

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="health", db_index=False
    )
    plugin = models.CharField(max_length=64)
    version = models.CharField(max_length=64)
    first_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    traps = models.PositiveBigIntegerField(default=0)
    trap_timeout = models.PositiveBigIntegerField(default=0)
    trap_blocking_call = models.PositiveBigIntegerField(default=0)
    trap_exit = models.PositiveBigIntegerField(default=0)
    trap_crash = models.PositiveBigIntegerField(default=0)
    trap_out_of_memory = models.PositiveBigIntegerField(default=0)
    trap_bad_output = models.PositiveBigIntegerField(default=0)
    trap_host_error = models.PositiveBigIntegerField(default=0)
    trap_other = models.PositiveBigIntegerField(default=0)
    deadline_hits = models.PositiveBigIntegerField(default=0)
    memory_cap_hits = models.PositiveBigIntegerField(default=0)
    fallbacks = models.PositiveBigIntegerField(default=0)
    ticks_failed = models.PositiveBigIntegerField(default=0)
    self_check = models.CharField(max_length=8, blank=True)
    p50_ms = models.FloatField(null=True)
    p99_ms = models.FloatField(null=True)
    sensor_age_s = models.FloatField(null=True)

    class Meta:
        ordering = ["device", "plugin", "-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "plugin", "version"], name="devices_pluginhealth_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.plugin} {self.version}: {self.traps} traps in {self.requests} requests"

    @property
    def traps_by_kind(self) -> dict[str, int]:
        """Trap kind → count, of the kinds that happened."""
        counts = {kind: getattr(self, trap_column(kind)) for kind in TRAP_KINDS}
        counts["other"] = self.trap_other
        return {kind: count for kind, count in counts.items() if count}


def trap_column(kind: str) -> str:
    """The `PluginHealth` column a trap kind is counted in."""
    return f"trap_{kind.replace('-', '_')}" if kind in TRAP_KINDS else "trap_other"


class LogLine(models.Model):
    """A line a plugin wrote (stdout, stderr or ``log.write``), as its device reported it."""

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="log_lines", db_index=False
    )
    at = models.DateTimeField()
    plugin = models.CharField(max_length=64)
    stream = models.CharField(max_length=8)
    level = models.CharField(max_length=8, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "at", "plugin", "stream"], name="devices_logline_unique_report"
            )
        ]
        indexes = [models.Index(fields=["at"], name="devices_logline_at")]  # for retention

    def __str__(self) -> str:
        return f"{self.plugin} [{self.stream}] {self.text[:60]}"
