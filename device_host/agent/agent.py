"""The agent's loop: enroll once, heartbeat with jitter and back-off, apply pushes in order."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from device_host.agent.artifacts import ArtifactStore
from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError
from device_host.agent.installer import Installer
from device_host.agent.state import AgentState
from device_host.agent.trust import load_trusted_keys
from device_host.config import AgentConfig
from device_host.delivery.statements import StatementError
from device_host.plugins.events import EventLog, PluginEvent
from device_host.plugins.manager import PluginManager
from device_host.readings import ReadingHistory

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
MAX_READINGS_PER_HEARTBEAT = 200


class DeviceAgent:
    """Keeps this device on the fleet's signed desired state, online or not."""

    def __init__(
        self,
        config: AgentConfig,
        state_dir: Path,
        host_version: str,
        manager: PluginManager,
        readings: ReadingHistory,
        events: EventLog,
    ) -> None:
        self._config = config
        self._host_version = host_version
        self._manager = manager
        self._readings = readings
        self.state = AgentState(state_dir / "agent.json")
        self.installer = Installer(
            manager, self.state, ArtifactStore(state_dir / "artifacts"), self.trusted_keys()
        )
        self._client = ControlPlaneClient(config.control_plane_url, self.state.data.device_token)
        self._pushes: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._restored = threading.Event()
        self._thread = threading.Thread(target=self._run, name="device-agent", daemon=True)
        self._readings_since = 0.0
        self._interval_s = config.heartbeat_interval_s
        self.last_heartbeat_ok: float | None = None
        self.last_sync: float | None = None
        """When a heartbeat last succeeded and what it asked for was applied (or refused)."""
        events.subscribe(self._keep_event)

    def trusted_keys(self) -> dict[str, Any]:
        return load_trusted_keys(self._config.trusted_keys_dir)

    def start(self) -> None:
        """Restores the accepted plugins from disk, then talks to the control plane.

        Both happen on the agent's thread: a restore may compile, and the server must answer
        meanwhile.
        """
        self._thread.start()

    @property
    def caught_up(self) -> bool:
        """Whether the plugins accepted before this start are loaded again."""
        return self._restored.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._pushes.put({})
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def accept_push(self, envelope: object) -> None:
        """Verifies a pushed desired state now (raises StatementError); applies it in order."""
        device_id = self.state.data.device_id
        if device_id is None:
            raise StatementError("this device is not enrolled yet")
        statement = self.installer.check_desired(envelope, device_id)
        sequence = int(statement["sequence"])  # type: ignore[call-overload]
        if sequence < self.state.data.desired_sequence:
            raise StatementError("desired state is older than the one already applied")
        if sequence > self.state.data.desired_sequence:  # equal: a heartbeat brought it first
            self._pushes.put(statement)

    def status(self) -> dict[str, object]:
        data = self.state.data
        return {
            "enrolled": data.device_id is not None,
            "device_id": data.device_id,
            "control_plane": self._config.control_plane_url,
            "desired_sequence": data.desired_sequence,
            "backlog": len(data.backlog),
            "last_heartbeat_ok": self.last_heartbeat_ok,
            "last_sync": self.last_sync,
        }

    def _run(self) -> None:
        self.installer.restore()
        self._restored.set()
        failures = 0
        next_heartbeat = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_heartbeat:
                ok = self._enrolled() and self._heartbeat()
                failures = 0 if ok else failures + 1
                delay = self._interval_s * (2 ** min(failures, 8))
                next_heartbeat = time.monotonic() + min(delay, MAX_BACKOFF_S) * random.uniform(
                    0.8, 1.2
                )
            self.installer.revert_failing(self._client)
            try:
                pushed = self._pushes.get(
                    timeout=max(0.0, min(1.0, next_heartbeat - time.monotonic()))
                )
            except queue.Empty:
                continue
            if pushed:
                self.installer.converge(pushed, self._client)

    def _enrolled(self) -> bool:
        if self.state.data.device_token is not None:
            return True
        config = self._config
        try:
            answer = self._client.enroll(
                config.enrollment_token, config.device_name, self._host_version, config.agent_url
            )
        except ControlPlaneError as exc:
            log.warning("enrollment failed: %s", exc)
            return False
        with self.state as data:
            data.device_id, data.device_token = (
                str(answer["device_id"]),
                str(answer["device_token"]),
            )
        self._client.token = self.state.data.device_token
        log.info("enrolled as device %s", self.state.data.device_id)
        return True

    def _heartbeat(self) -> bool:
        now = time.time()
        backlog = list(self.state.data.backlog)
        readings = self._new_readings()
        report = {
            "host_version": self._host_version,
            "plugins": [_plugin_report(slot.to_json()) for slot in self._manager.slots()],
            "readings": readings,
            "events": backlog,
        }
        try:
            answer = self._client.heartbeat(report)
        except ControlPlaneError as exc:
            log.warning("heartbeat failed (%d events kept for later): %s", len(backlog), exc)
            return False
        self.state.acknowledge(len(backlog))
        newest = max((float(r["taken_at"]) for r in readings), default=0.0)  # type: ignore[arg-type]
        self._readings_since = max(self._readings_since, newest)
        self.last_heartbeat_ok = now
        self._interval_s = float(answer.get("heartbeat_interval_s", self._interval_s))
        self._apply_desired(answer.get("desired"))
        self.last_sync = time.time()
        return True

    def _apply_desired(self, envelope: object) -> None:
        device_id = self.state.data.device_id
        if envelope is None or device_id is None:
            return
        try:
            statement = self.installer.check_desired(envelope, device_id)
        except StatementError as exc:
            self._manager.refuse("desired-state", "?", str(exc))
            return
        if int(statement["sequence"]) < self.state.data.desired_sequence:  # type: ignore[call-overload]
            return
        self.installer.converge(statement, self._client)

    def _new_readings(self) -> list[dict[str, object]]:
        history = self._readings.to_json(since=self._readings_since)
        flat = [reading for series in history.values() for reading in series]
        return sorted(flat, key=lambda r: float(r["taken_at"]))[-MAX_READINGS_PER_HEARTBEAT:]  # type: ignore[arg-type]

    def _keep_event(self, event: PluginEvent) -> None:
        self.state.add_event({**asdict(event), "kind": str(event.kind)})


def _plugin_report(slot: dict[str, object]) -> dict[str, object]:
    keys = ("name", "version", "sha256", "state", "trap_count", "last_error")
    return {key: slot.get(key) for key in keys}
