"""Engine settings that change compiled code: what a device class is compiled for.

A compiled artifact loads only into an engine with the same wasmtime major version, target,
code-generation flags and wasm features, on a CPU that has every ISA feature it was compiled
with (see docs/compiled-artifacts.md). So the target is always explicit: without one,
wasmtime enables every feature of the CPU it runs on, and an artifact compiled on a Pi 5
would be refused by a Pi 3. Plain data, importable without wasmtime.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from typing import Any

OPT_LEVELS = ("none", "speed", "speed_and_size")
TARGETS = ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu")


class SettingsError(ValueError):
    """Engine settings that no engine here can have."""


def native_target() -> str:
    """The target triple of this machine's CPU, the only one its wasmtime wheel compiles for."""
    target = f"{platform.machine()}-unknown-linux-gnu"
    if target not in TARGETS:
        raise SettingsError(f"this machine ({platform.machine()}) is not a supported target")
    return target


@dataclass(frozen=True)
class EngineSettings:
    """Options of an engine that change the code it compiles or the artifacts it accepts.

    ``features`` are Cranelift ISA flags (``has_lse``...) beyond the target's baseline; a
    device enables them only when its CPU has them (wasmtime refuses the engine otherwise).
    """

    target: str = field(default_factory=native_target)
    features: tuple[str, ...] = ()
    opt_level: str = "speed"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise SettingsError(f"unknown target {self.target!r}; known: {', '.join(TARGETS)}")
        if self.opt_level not in OPT_LEVELS:
            raise SettingsError(f"unknown opt level {self.opt_level!r}")
        for feature in self.features:
            if not feature.startswith("has_") or not feature[4:].replace("_", "").isalnum():
                raise SettingsError(f"{feature!r} is not an ISA feature flag (has_...)")
        if list(self.features) != sorted(set(self.features)):
            object.__setattr__(self, "features", tuple(sorted(set(self.features))))

    @property
    def native(self) -> bool:
        """Whether this machine's wasmtime can compile for it (a foreign target aborts it)."""
        return self.target == native_target()

    def to_json(self) -> str:
        return json.dumps(
            {"target": self.target, "features": list(self.features), "opt_level": self.opt_level},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> EngineSettings:
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise SettingsError("engine settings must be a JSON object")
        features = data.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise SettingsError("features must be a list of strings")
        return cls(
            target=str(data.get("target", native_target())),
            features=tuple(features),
            opt_level=str(data.get("opt_level", "speed")),
        )
