"""What the agent must not forget: its identity, what it accepted, and what it has not reported.

Everything is rewritten atomically, so a ``kill -9`` at any point leaves the old state or the
new one, never a mix, and only when it changed: each write is an fsync on a Pi's SD card, and
most heartbeats change nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleet_common.atomic import atomic_write_bytes

MAX_BACKLOG = 1000


@dataclass
class AcceptedRelease:
    serial: int
    envelope: dict[str, str]
    compiled: dict[str, str] | None = None
    """The signed compiled artifact it runs from; None when this device compiled it."""


@dataclass
class HeldBack:
    """A release this device will not try again until a newer desired state asks for it.

    Holding per desired-state sequence, not forever, is what keeps one bad moment (a revert,
    a refusal) from blacklisting a release the fleet later asks for on purpose.
    """

    serial: int
    sequence: int
    why: str
    """``reverted``, ``refused`` (it did not load here) or ``rollback``."""


@dataclass
class AgentStateData:
    device_id: str | None = None
    device_token: str | None = None
    desired_sequence: int = -1
    releases: dict[str, AcceptedRelease] = field(default_factory=dict)
    """What each plugin runs now, as signed."""
    last_good: dict[str, AcceptedRelease] = field(default_factory=dict)
    """What each plugin ran before its current release, to revert to."""
    highest_serial: dict[str, int] = field(default_factory=dict)
    """Rollback protection: the highest serial installed; nothing below it is accepted again."""
    highest_sha256: dict[str, str] = field(default_factory=dict)
    """The artifact of the highest serial: only these bytes may be installed at that serial."""
    held: dict[str, HeldBack] = field(default_factory=dict)
    """Per plugin, the release not to retry for the desired state that carried it."""
    backlog: list[dict[str, Any]] = field(default_factory=list)
    """Events not yet acknowledged by the control plane."""


class AgentState:
    """The agent's state file, with a lock around every read-modify-write.

    Leaving ``with state as data:`` writes the file only if ``data`` differs from what is on
    disk, so readers may use the same form without costing a write.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._desired_path = path.with_name("desired.json")
        self._lock = threading.RLock()
        self.data = self._load(path)
        self._saved = self._encode()
        self.writes = 0
        """State files written since start (status and tests watch it)."""

    def __enter__(self) -> AgentStateData:
        self._lock.acquire()
        return self.data

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self._save()
        finally:
            self._lock.release()

    def add_event(self, event: dict[str, Any]) -> None:
        with self as data:
            data.backlog = [*data.backlog, event][-MAX_BACKLOG:]

    def acknowledge(self, count: int) -> None:
        """Drops the first ``count`` backlog events, which a heartbeat delivered."""
        if count:
            with self as data:
                data.backlog = data.backlog[count:]

    def flush(self) -> None:
        """Writes the state if it differs from the file (a write that failed before)."""
        with self:
            pass

    def remember_desired(self, envelope: dict[str, Any]) -> None:
        """Keeps the newest accepted desired-state envelope: heartbeats no longer repeat it,
        and after a restart the agent still knows what to finish downloading."""
        with self._lock:
            atomic_write_bytes(self._desired_path, json.dumps(envelope).encode())
            self.writes += 1

    def remembered_desired(self) -> dict[str, Any] | None:
        """The envelope `remember_desired` kept (still to be verified), or None."""
        try:
            envelope = json.loads(self._desired_path.read_bytes())
        except (OSError, ValueError):
            return None
        return envelope if isinstance(envelope, dict) else None

    def _encode(self) -> bytes:
        return json.dumps(asdict(self.data), indent=1).encode()

    def _save(self) -> None:
        encoded = self._encode()
        if encoded == self._saved:
            return
        atomic_write_bytes(self._path, encoded)
        self._saved = encoded
        self.writes += 1

    @staticmethod
    def _load(path: Path) -> AgentStateData:
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return AgentStateData()
        return AgentStateData(
            device_id=raw.get("device_id"),
            device_token=raw.get("device_token"),
            desired_sequence=int(raw.get("desired_sequence", -1)),
            releases={k: AcceptedRelease(**v) for k, v in raw.get("releases", {}).items()},
            last_good={k: AcceptedRelease(**v) for k, v in raw.get("last_good", {}).items()},
            highest_serial={k: int(v) for k, v in raw.get("highest_serial", {}).items()},
            highest_sha256={k: str(v) for k, v in raw.get("highest_sha256", {}).items()},
            held={k: HeldBack(**v) for k, v in raw.get("held", {}).items()},
            backlog=list(raw.get("backlog", [])),
        )
