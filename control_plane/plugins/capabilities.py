"""What a version may touch, in words, and how that changed since the last approved one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def derive_capabilities(manifest: Manifest, surface: ComponentSurface) -> dict[str, Any]:
    """The reviewer's view: grants in words, and the contract interfaces really used."""
    return {
        "grants": manifest.capabilities.describe(),
        "imports": surface.imports,
        "exports": surface.exports,
    }


@dataclass(frozen=True)
class CapabilityDiff:
    """Differences from the previously approved version (all new if there is none)."""

    previous: str | None
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
    """Compares ``version`` with the plugin's approved version before it."""
    approved = PluginVersion.objects.filter(
        plugin_id=version.plugin_id, status=VersionStatus.APPROVED
    ).exclude(pk=version.pk)
    if version.serial is not None:
        approved = approved.filter(serial__lt=version.serial)
    previous = approved.order_by("-serial").first()
    if previous is None:
        return diff_capabilities(None, version)
    return diff_capabilities(previous, version)


def diff_capabilities(old: PluginVersion | None, new: PluginVersion) -> CapabilityDiff:
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
        added_interfaces=sorted(new_imports - old_imports),
        removed_interfaces=sorted(old_imports - new_imports),
        added_pins=[f"{label} {pin}" for label, pin in sorted(new_pins - old_pins)],
        removed_pins=[f"{label} {pin}" for label, pin in sorted(old_pins - new_pins)],
        quota_changes=quota_changes,
    )


def _pins(manifest: dict[str, Any]) -> set[tuple[str, int]]:
    capabilities = manifest.get("capabilities", {})
    return {(label, pin) for key, label in PIN_GRANTS for pin in capabilities.get(key, [])}
