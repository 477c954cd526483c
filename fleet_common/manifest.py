"""Plugin manifests: who a plugin is and exactly what it may touch.

A manifest is a small TOML file next to the component. The host links only the
host interfaces the manifest grants, and host functions check every pin against
it, so a plugin can reach nothing its manifest does not name.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_common.contract.worlds import WORLDS
from fleet_common.errors import ManifestError

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")
_BCM_PINS = range(0, 28)
MAX_KV_QUOTA_BYTES = 1 << 20
MEMORY_MIB_RANGE = range(16, 513)
CALL_TIMEOUT_MS_RANGE = range(10, 10_001)
TICK_INTERVAL_S_RANGE = range(1, 3601)
DEFAULT_KV_WRITE_BYTES_PER_MIN = 64 << 10
KV_WRITE_BYTES_PER_MIN_RANGE = range(1 << 10, (1 << 20) + 1)
"""A plugin may rewrite at most 1 MiB of its store per minute: an SD card's lifetime is finite."""


@dataclass(frozen=True)
class Capabilities:
    """What the plugin may touch: sensor pins, output pins and key-value storage."""

    dht22_pins: frozenset[int] = frozenset()
    gpio_out_pins: frozenset[int] = frozenset()
    kv_quota_bytes: int = 0

    def describe(self) -> list[str]:
        """Human-readable grants, e.g. ``["dht22 pin 4", "gpio out pin 17"]``."""
        grants = [f"dht22 pin {pin}" for pin in sorted(self.dht22_pins)]
        grants += [f"gpio out pin {pin}" for pin in sorted(self.gpio_out_pins)]
        if self.kv_quota_bytes:
            grants.append(f"kv {self.kv_quota_bytes} bytes")
        return grants


@dataclass(frozen=True)
class Limits:
    """The budget every call into the plugin runs under."""

    memory_mib: int = 64
    call_timeout_ms: int = 250
    tick_interval_s: int = 5
    kv_write_bytes_per_min: int = DEFAULT_KV_WRITE_BYTES_PER_MIN
    """Bytes of keys and values the plugin may write to its store per minute, sustained."""


@dataclass(frozen=True)
class Manifest:
    """A plugin's identity, world, grants and limits, as read from ``manifest.toml``."""

    name: str
    version: str
    world: str
    component: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    limits: Limits = field(default_factory=Limits)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def to_data(self) -> dict[str, Any]:
        """The manifest in its file's schema; `parse_manifest` reads it back unchanged."""
        return {
            "name": self.name,
            "version": self.version,
            "world": self.world,
            "component": self.component,
            "capabilities": {
                "dht22": sorted(self.capabilities.dht22_pins),
                "gpio-out": sorted(self.capabilities.gpio_out_pins),
                "kv-quota-bytes": self.capabilities.kv_quota_bytes,
            },
            "limits": {
                "memory-mib": self.limits.memory_mib,
                "call-timeout-ms": self.limits.call_timeout_ms,
                "tick-interval-s": self.limits.tick_interval_s,
                "kv-write-bytes-per-min": self.limits.kv_write_bytes_per_min,
            },
        }


def load_manifest(path: Path) -> Manifest:
    """Reads and validates a manifest file; every problem raises `ManifestError` naming it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: no manifest (expected manifest.toml beside the plugin)"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from None
    return parse_manifest(data, source=str(path))


def parse_manifest(data: dict[str, Any], *, source: str = "manifest") -> Manifest:
    """Validates manifest data already parsed from TOML or JSON."""
    unknown = set(data) - {"name", "version", "world", "component", "capabilities", "limits"}
    if unknown:
        raise ManifestError(f"{source}: unknown keys {sorted(unknown)}")
    name = _required_str(data, "name", source)
    if not _NAME.match(name):
        raise ManifestError(
            f"{source}: name {name!r} must be lowercase letters, digits and dashes (max 40)"
        )
    version = _required_str(data, "version", source)
    if not _SEMVER.match(version):
        raise ManifestError(f"{source}: version {version!r} is not a semantic version like 1.2.0")
    world = _required_str(data, "world", source)
    if world not in WORLDS:
        raise ManifestError(f"{source}: world {world!r} is not one of {', '.join(WORLDS)}")
    component = data.get("component", f"{name}.wasm")
    if not isinstance(component, str) or "/" in component or not component.endswith(".wasm"):
        raise ManifestError(f"{source}: component must be a file name ending in .wasm")
    capabilities = _parse_capabilities(data.get("capabilities", {}), source)
    if world == "demo:sensor-plugin" and not capabilities.dht22_pins:
        raise ManifestError(f"{source}: a demo:sensor-plugin needs at least one dht22 pin")
    return Manifest(
        name=name,
        version=version,
        world=world,
        component=component,
        capabilities=capabilities,
        limits=_parse_limits(data.get("limits", {}), source),
    )


def _required_str(data: dict[str, Any], key: str, source: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{source}: {key!r} is required and must be a string")
    return value


def _parse_capabilities(raw: object, source: str) -> Capabilities:
    if not isinstance(raw, dict):
        raise ManifestError(f"{source}: [capabilities] must be a table")
    unknown = set(raw) - {"dht22", "gpio-out", "kv-quota-bytes"}
    if unknown:
        raise ManifestError(f"{source}: unknown capabilities {sorted(unknown)}")
    quota = raw.get("kv-quota-bytes", 0)
    if not isinstance(quota, int) or not 0 <= quota <= MAX_KV_QUOTA_BYTES:
        raise ManifestError(f"{source}: kv-quota-bytes must be 0..{MAX_KV_QUOTA_BYTES}")
    return Capabilities(
        dht22_pins=_parse_pins(raw.get("dht22", []), "dht22", source),
        gpio_out_pins=_parse_pins(raw.get("gpio-out", []), "gpio-out", source),
        kv_quota_bytes=quota,
    )


def _parse_pins(raw: object, key: str, source: str) -> frozenset[int]:
    if not isinstance(raw, list) or not all(isinstance(pin, int) for pin in raw):
        raise ManifestError(f"{source}: {key} must be a list of BCM pin numbers")
    bad = [pin for pin in raw if pin not in _BCM_PINS]
    if bad:
        raise ManifestError(f"{source}: {key} pins {bad} are not BCM GPIO pins 0..27")
    return frozenset(raw)


def _parse_limits(raw: object, source: str) -> Limits:
    if not isinstance(raw, dict):
        raise ManifestError(f"{source}: [limits] must be a table")
    unknown = set(raw) - {
        "memory-mib",
        "call-timeout-ms",
        "tick-interval-s",
        "kv-write-bytes-per-min",
    }
    if unknown:
        raise ManifestError(f"{source}: unknown limits {sorted(unknown)}")
    defaults = Limits()
    values = {
        "memory-mib": (raw.get("memory-mib", defaults.memory_mib), MEMORY_MIB_RANGE),
        "call-timeout-ms": (
            raw.get("call-timeout-ms", defaults.call_timeout_ms),
            CALL_TIMEOUT_MS_RANGE,
        ),
        "tick-interval-s": (
            raw.get("tick-interval-s", defaults.tick_interval_s),
            TICK_INTERVAL_S_RANGE,
        ),
        "kv-write-bytes-per-min": (
            raw.get("kv-write-bytes-per-min", defaults.kv_write_bytes_per_min),
            KV_WRITE_BYTES_PER_MIN_RANGE,
        ),
    }
    for key, (value, allowed) in values.items():
        if not isinstance(value, int) or value not in allowed:
            raise ManifestError(f"{source}: {key} must be {allowed.start}..{allowed.stop - 1}")
    return Limits(
        memory_mib=values["memory-mib"][0],
        call_timeout_ms=values["call-timeout-ms"][0],
        tick_interval_s=values["tick-interval-s"][0],
        kv_write_bytes_per_min=values["kv-write-bytes-per-min"][0],
    )
