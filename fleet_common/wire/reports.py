"""What a device tells the control plane about itself, beyond its plugins: its engine."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet_common.compiler.settings import TARGETS
from fleet_common.errors import FleetError

MAX_FEATURES = 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FEATURE = re.compile(r"has_[a-z0-9_]{1,40}")


class ReportError(FleetError):
    """A device's report is malformed; the message names the field."""


@dataclass(frozen=True)
class EngineReport:
    """Which compiled artifacts a device's engine loads: the key is exact, target and
    features say why (and which device class it belongs to)."""

    key: str
    target: str
    features: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "target": self.target, "features": list(self.features)}

    @classmethod
    def parse(cls, data: object, field: str = "engine") -> EngineReport:
        if not isinstance(data, dict):
            raise ReportError(f"{field} must be an object with key, target and features")
        key, target, features = data.get("key"), data.get("target"), data.get("features", [])
        if not isinstance(key, str) or not _HEX64.fullmatch(key):
            raise ReportError(f"{field}.key must be 64 lowercase hex digits")
        if target not in TARGETS:
            raise ReportError(f"{field}.target must be one of {', '.join(TARGETS)}")
        if (
            not isinstance(features, list)
            or len(features) > MAX_FEATURES
            or not all(isinstance(f, str) and _FEATURE.fullmatch(f) for f in features)
        ):
            raise ReportError(f"{field}.features must be a list of ISA flags (has_...)")
        return cls(key, target, tuple(sorted(set(features))))
