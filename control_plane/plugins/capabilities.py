"""What a version may touch, in words, and how that differs from what devices run now."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from control_plane.devices.models import Device
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.components import ComponentSurface
from control_plane.plugins.models import PluginVersion
from fleet_common.manifest import Manifest

PIN_GRANTS = (("dht22", "dht22 pin"), ("gpio-out", "gpio out pin"))
QUOTAS = (
    ("capabilities", "kv-quota-bytes"),
    ("limits", "memory-mib"),
    ("limits", "call-timeout-ms"),
    ("limits", "tick-interval-s"),
    ("limits", "kv-write-bytes-per-min"),
)
LOADED_STATES = ("running", "quarantined")
"""Slot states (device_host/plugins/slot.py) in which a device has a version loaded: a
quarantined version is paused, not replaced, so it is still what the device runs."""


def derive_capabilities(manifest: Manifest, surface: ComponentSurface) -> dict[str, Any]:
    """The reviewer's view: grants in words, and the contract interfaces really used."""
    return {
        "grants": manifest.capabilities.describe(),
        "imports": surface.imports,
        "exports": surface.exports,
    }


@dataclass(frozen=True)
class CapabilityDiff:
    """Differences from the baseline version (all new if there is none).

    ``previous_devices`` is how many devices report running the baseline; 0 means none
    runs an approved version before this one and the baseline is the last approved.
    """

    previous: str | None
    previous_devices: int = 0
    added_interfaces: list[str] = field(default_factory=list)
    removed_interfaces: list[str] = field(default_factory=list)
    added_pins: list[str] = field(default_factory=list)
    removed_pins: list[str] = field(default_factory=list)
    quota_changes: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (
            self.added_interfaces
            or self.removed_interfaces
            or self.added_pins
            or self.removed_pins
            or self.quota_changes
        )

    @property
    def heading(self) -> str:
        """Which version this is compared with, and why that one."""
        if self.previous is None:
            return "first approved version of this plugin: everything above is new"
        if self.previous_devices:
            devices = "device runs" if self.previous_devices == 1 else "devices run"
            return f"compared with {self.previous}, which {self.previous_devices} {devices}"
        return (
            f"compared with {self.previous}, the last approved "
            "(no device reports running an earlier approved version)"
        )

    def describe(self) -> list[str]:
        """One line per change, e.g. ``+ gpio out pin 17`` or ``kv-quota-bytes 0 → 1024``."""
        return [
            *(f"+ interface {name}" for name in self.added_interfaces),
            *(f"- interface {name}" for name in self.removed_interfaces),
            *(f"+ {pin}" for pin in self.added_pins),
            *(f"- {pin}" for pin in self.removed_pins),
            *self.quota_changes,
        ]


def capability_diff(version: PluginVersion) -> CapabilityDiff:
    """Compares ``version`` with the approved version before it that most devices run.

    Devices are what a review protects, so the baseline is the code they really run: an
    approved version they all reverted from is not it. With no device reporting any
    approved version before this one, it is the last approved (the highest serial below).
    Ties go to the higher serial.
    """
    approved = PluginVersion.objects.filter(
        plugin_id=version.plugin_id, status=VersionStatus.APPROVED
    ).exclude(pk=version.pk)
    if version.serial is not None:
        approved = approved.filter(serial__lt=version.serial)
    candidates = list(approved.select_related("plugin").order_by("-serial"))
    if not candidates:
        return diff_capabilities(None, version)
    running = devices_running(candidates)
    baseline = max(candidates, key=lambda v: (running[v.pk], v.serial or 0))
    return diff_capabilities(baseline, version, devices=running[baseline.pk])


def devices_running(versions: list[PluginVersion]) -> Counter[int]:
    """How many devices report, in their last heartbeat, running each of ``versions``.

    A report counts for a version when its name, version and sha256 all match and the
    version is loaded (running or quarantined). Keyed by the versions' primary keys.
    """
    by_report = {(v.plugin.name, v.version, v.sha256): v.pk for v in versions}
    counts: Counter[int] = Counter()
    for reported in Device.objects.values_list("reported_plugins", flat=True).iterator():
        for plugin in reported if isinstance(reported, list) else []:
            if not isinstance(plugin, dict) or plugin.get("state") not in LOADED_STATES:
                continue
            key = (plugin.get("name"), plugin.get("version"), plugin.get("sha256"))
            if key in by_report:
                counts[by_report[key]] += 1
    return counts


def diff_capabilities(
    old: PluginVersion | None, new: PluginVersion, *, devices: int = 0
) -> CapabilityDiff:
    """What ``new`` may touch that ``old`` could not, and the reverse; ``devices`` run ``old``."""
    old_imports = set(old.capabilities.get("imports", [])) if old else set()
    new_imports = set(new.capabilities.get("imports", []))
    old_pins = _pins(old.manifest) if old else set()
    new_pins = _pins(new.manifest)
    quota_changes = []
    for section, key in QUOTAS:
        before = old.manifest.get(section, {}).get(key) if old else None
        after = new.manifest.get(section, {}).get(key)
        if before != after:
            quota_changes.append(f"{key} {'none' if before is None else before} → {after}")
    return CapabilityDiff(
        previous=old.version if old else None,
        previous_devices=devices if old else 0,
        added_interfaces=sorted(new_imports - old_imports),
        removed_interfaces=sorted(old_imports - new_imports),
        added_pins=[f"{label} {pin}" for label, pin in sorted(new_pins - old_pins)],
        removed_pins=[f"{label} {pin}" for label, pin in sorted(old_pins - new_pins)],
        quota_changes=quota_changes,
    )


def _pins(manifest: dict[str, Any]) -> set[tuple[str, int]]:
    capabilities = manifest.get("capabilities", {})
    return {(label, pin) for key, label in PIN_GRANTS for pin in capabilities.get(key, [])}
