"""The agent's loop: enroll once, heartbeat with jitter and back-off, converge in order.

Heartbeats are conditional: each one names the newest desired state accepted here, and the
answer carries an envelope only when the control plane holds a newer one. A notice on the
MQTT channel only makes the next heartbeat come sooner (`DeviceAgent.poke`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from device_host.agent.artifacts import ArtifactStore
from device_host.agent.channel import NoticeChannel
from device_host.agent.conditions import Conditions
from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError
from device_host.agent.health_report import HealthReporter
from device_host.agent.installer import Installer
from device_host.agent.state import AgentState
from device_host.agent.supervisor import Supervisor
from device_host.agent.tls import pinned_context
from device_host.agent.trust import load_trusted_keys
from device_host.config import AgentConfig
from device_host.hardware import Dht22Sampler
from device_host.plugins.events import EventLog, PluginEvent
from device_host.plugins.manager import PluginManager
from device_host.readings import ReadingHistory
from fleet_common.wire.answers import RejectedReadings
from fleet_common.wire.events import EventKind
from fleet_common.wire.heartbeat import (
    EventReport,
    Heartbeat,
    PluginReport,
    ReadingReport,
    ReportError,
)
from fleet_common.wire.statements import DesiredState, StatementError

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF_S = 300.0
MAX_READINGS_PER_HEARTBEAT = 200
POKE_INTERVAL_S = 1.0
"""At most one early heartbeat per this many seconds, however many notices arrive."""
DESIRED_STATE_SUBJECT = "desired-state"
"""The ``plugin`` of events about a desired state as a whole, which is no plugin."""


class StaleDesiredState(StatementError):
    """A desired state older than one this device already accepted: refused, changes nothing."""


class DeviceAgent:
    """Keeps this device on the fleet's signed desired state, online or not.

    Heartbeat answers converge on the highest sequence ever *accepted*, not the last
    applied: an answer that arrives late (seq 9 after 10) is refused and cannot undo a
    newer state. The loop runs under a supervisor, so no exception stops it for good.
    """

    def __init__(
        self,
        config: AgentConfig,
        state_dir: Path,
        host_version: str,
        manager: PluginManager,
        readings: ReadingHistory,
        events: EventLog,
        samplers: Mapping[int, Dht22Sampler] | None = None,
    ) -> None:
        self._config = config
        self._host_version = host_version
        self._manager = manager
        self._readings = readings
        self._events = events
        self._stop = threading.Event()
        self.conditions = Conditions()
        self.state = AgentState(state_dir / "agent.json")
        self.installer = Installer(
            manager,
            self.state,
            ArtifactStore(state_dir / "artifacts"),
            self.trusted_keys(),
            self.conditions,
            self._stop,
            compile_locally=config.compile_locally,
        )
        manager.keep_referenced_by(self.installer.referenced_sha256s)
        https = config.control_plane_url.startswith("https://")
        self._client = ControlPlaneClient(
            config.control_plane_url,
            self.state.data.device_token,
            pinned_context(config.ca_file) if https and config.ca_file is not None else None,
        )
        self._health = HealthReporter(manager, samplers or {}, state_dir, config.control_plane_url)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._accepted_sequence = self.state.data.desired_sequence
        self._pending: DesiredState | None = None
        self._restored = threading.Event()
        self._supervisor = Supervisor("device agent", self._loop, self._stop)
        self._readings_since = 0.0
        self._interval_s = config.heartbeat_interval_s
        self._next_heartbeat = 0.0
        self._not_before = 0.0
        """Monotonic time before which no request goes out (a 429's Retry-After)."""
        self._poked = False
        self._last_poke = -POKE_INTERVAL_S
        self._current: DesiredState | None = None
        """The newest accepted desired state, verified: what an answer without one means."""
        self._heartbeat_failures = 0
        self.last_heartbeat_ok: float | None = None
        self.last_sync: float | None = None
        """When a heartbeat last succeeded and what it asked for was applied (or refused)."""
        self.channel: NoticeChannel | None = None
        if config.ca_file is not None:
            self.channel = NoticeChannel(
                state_dir / "channel",
                config.ca_file,
                self._client,
                self.conditions,
                device_name=config.device_name,
                accepted_sequence=lambda: self._accepted_sequence,
                poke=self.poke,
            )
        events.subscribe(self._keep_event)

    def trusted_keys(self) -> dict[str, Any]:
        return load_trusted_keys(self._config.trusted_keys_dir)

    def start(self) -> None:
        """Restores the accepted plugins from disk, then talks to the control plane.

        Both happen on the agent's thread: a restore may compile, and the server must answer
        meanwhile.
        """
        self._supervisor.start()
        if self.channel is not None:
            self.channel.start()

    def poke(self) -> None:
        """Makes the next heartbeat due now (a notice said a newer desired state is ready).

        At most one per `POKE_INTERVAL_S`, and never before a 429's Retry-After has passed.
        """
        with self._lock:
            now = time.monotonic()
            if now - self._last_poke < POKE_INTERVAL_S:
                return
            self._last_poke = now
            self._poked = True
        self._wake.set()

    @property
    def caught_up(self) -> bool:
        """Whether the plugins accepted before this start are loaded again."""
        return self._restored.is_set()

    @property
    def healthy(self) -> bool:
        """False while the loop is dead or crashing: /healthz must not say "ok" then."""
        return self._supervisor.healthy

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.stop()
        self._stop.set()
        self._wake.set()
        self._supervisor.join(timeout=30)

    def status(self) -> dict[str, object]:
        data = self.state.data
        return {
            **self._supervisor.status(),
            "healthy": self.healthy,
            "enrolled": data.device_id is not None,
            "device_id": data.device_id,
            "control_plane": self._config.control_plane_url,
            "desired_sequence": data.desired_sequence,
            "accepted_sequence": self._accepted_sequence,
            "heartbeat_interval_s": self._interval_s,
            "heartbeat_failures": self._heartbeat_failures,
            "held": {name: asdict(held) for name, held in data.held.items()},
            "problems": self.conditions.snapshot(),
            "backlog": len(data.backlog),
            "last_heartbeat_ok": self.last_heartbeat_ok,
            "last_sync": self.last_sync,
            "state_writes": self.state.writes,
            "channel": {"state": "off: no [agent] ca_file"}
            if self.channel is None
            else self.channel.status(),
        }

    def _accept(self, statement: DesiredState, envelope: dict[str, Any]) -> bool:
        sequence = statement.sequence
        with self._lock:
            if sequence < self._accepted_sequence:
                raise StaleDesiredState(
                    f"desired state {sequence} is older than the accepted {self._accepted_sequence}"
                )
            if sequence == self._accepted_sequence:
                if self._current is None:  # a host that kept no envelope before an upgrade
                    self.state.remember_desired(envelope)
                    self._current = statement
                return False
            self.state.remember_desired(envelope)
            self._accepted_sequence = sequence
            self._pending = self._current = statement
        self._wake.set()
        return True

    def _resume(self) -> None:
        """After a restart: the remembered desired state, so that an answer without one can
        still finish its downloads, and one accepted but not yet applied gets applied."""
        envelope, device_id = self.state.remembered_desired(), self.state.data.device_id
        if envelope is None or device_id is None:
            return
        try:
            statement = self.installer.check_desired(envelope, device_id)
        except StatementError as exc:
            log.warning("forgetting the remembered desired state: %s", exc)
            return
        with self._lock:
            if statement.sequence >= self._accepted_sequence:
                self._current = statement
            if statement.sequence > self._accepted_sequence:
                self._accepted_sequence, self._pending = statement.sequence, statement

    def _take_pending(self) -> DesiredState | None:
        with self._lock:
            pending, self._pending = self._pending, None
            self._wake.clear()
            return pending

    def _loop(self) -> None:
        """One supervised run; returns only when the agent stops."""
        if not self._restored.is_set():
            try:
                self.installer.restore()
                self._resume()
            finally:
                self._restored.set()
        while not self._stop.is_set():
            with self._lock:
                poked, self._poked = self._poked, False
            now = time.monotonic()
            if (now >= self._next_heartbeat or poked) and now >= self._not_before:
                self._beat()
            self.installer.revert_failing(self._client)
            self._supervisor.progress()
            pending = self._take_pending()
            if pending is not None:
                self.installer.converge(pending, self._client)
                continue
            due = max(self._next_heartbeat, self._not_before)
            self._wake.wait(max(0.0, min(1.0, due - time.monotonic())))

    def _beat(self) -> None:
        """One enrollment-or-heartbeat, then when the next one is due."""
        try:
            self._enroll_once()
            self._heartbeat()
        except ControlPlaneError as exc:
            self._heartbeat_failures += 1
            if exc.retry_after_s is not None:
                self._not_before = time.monotonic() + exc.retry_after_s
        else:
            self._heartbeat_failures = 0
        delay = self._interval_s * (2 ** min(self._heartbeat_failures, 8))
        self._next_heartbeat = time.monotonic() + min(delay, MAX_BACKOFF_S) * random.uniform(
            0.8, 1.2
        )

    def _enroll_once(self) -> None:
        """Enrolls unless enrolled; raises ControlPlaneError (reported) when that fails."""
        if self.state.data.device_token is not None:
            return
        config = self._config
        try:
            answer = self._client.enroll(
                config.enrollment_token,
                config.device_name,
                self._host_version,
                self._manager.engine_report(),
                channel_csr=None if self.channel is None else self.channel.csr(),
            )
        except ControlPlaneError as exc:
            self.conditions.report("enrollment", f"failed: {_why(exc)}")
            raise
        self.conditions.clear("enrollment")
        with self.state as data:
            data.device_id, data.device_token = answer.device_id, answer.device_token
        if answer.heartbeat_interval_s is not None:
            self._interval_s = answer.heartbeat_interval_s
        self._client.token = answer.device_token
        log.info("enrolled as device %s", answer.device_id)
        if self.channel is not None:
            if answer.channel is not None:
                self.channel.accept_grant(answer.channel)
            self.channel.wake()

    def _heartbeat(self) -> None:
        now = time.time()
        backlog = list(self.state.data.backlog)
        readings = self._new_readings()
        slots = self._manager.slots()
        health = self._health.pending()
        report = Heartbeat(
            host_version=self._host_version,
            engine=self._manager.engine_report(),
            plugins=tuple(_wire(PluginReport.parse, [s.to_json() for s in slots], "a plugin")),
            readings=tuple(_wire(ReadingReport.parse, readings, "a reading")),
            events=tuple(_wire(EventReport.parse, backlog, "a backlog event")),
            health=health.health,
            vitals=health.vitals,
            log_tail=health.log_tail,
            desired_sequence=None if self._current is None else self._accepted_sequence,
        ).to_json()
        try:
            answer = self._client.heartbeat(report)
        except ControlPlaneError as exc:
            self.conditions.report("heartbeat", f"failed ({len(backlog)} events kept): {_why(exc)}")
            raise
        self.conditions.clear("heartbeat")
        self._report_rejected(answer.rejected_readings)
        self.state.acknowledge(len(backlog))
        self.state.flush()
        self._health.acknowledge(health)
        newest = max((float(r["taken_at"]) for r in readings), default=0.0)  # type: ignore[arg-type]
        self._readings_since = max(self._readings_since, newest)
        self.last_heartbeat_ok = now
        if answer.heartbeat_interval_s is not None:
            self._interval_s = answer.heartbeat_interval_s
        self._apply_desired(answer.desired)
        self.last_sync = time.time()

    def _report_rejected(self, rejected: RejectedReadings | None) -> None:
        """Readings the control plane refused are not sent again; the condition says why."""
        if rejected is None:
            self.conditions.clear("readings")
            return
        self.conditions.report(
            "readings",
            f"the control plane refused {rejected.count} reading(s): {rejected.problem}",
        )

    def _apply_desired(self, envelope: dict[str, Any] | None) -> None:
        """Accepts a newer desired state, or retries the current one's failed downloads.

        An answer without an envelope means "yours is current": the retry then works from
        the desired state accepted before (remembered across restarts).
        """
        device_id = self.state.data.device_id
        if device_id is None:
            return
        if envelope is None:
            statement = self._current
            if statement is None:
                return
        else:
            try:
                statement = self.installer.check_desired(envelope, device_id)
                if self._accept(statement, envelope):
                    self.conditions.clear(DESIRED_STATE_SUBJECT)
                    return  # the loop applies it next
            except StaleDesiredState:
                return  # a newer one was accepted while this answer was on its way
            except StatementError as exc:
                if self.conditions.report(DESIRED_STATE_SUBJECT, f"refused: {exc}", logging.ERROR):
                    self._events.add(DESIRED_STATE_SUBJECT, "-", EventKind.REFUSED, str(exc))
                return
            self.conditions.clear(DESIRED_STATE_SUBJECT)
        with self._lock:
            if self._pending is not None:
                return  # the loop applies it next
        applied = self.state.data.desired_sequence >= statement.sequence
        offered = (statement.releases, statement.compiled)
        unfinished = self.installer.incomplete or self.installer.converged != offered
        if not applied or unfinished:
            self.installer.converge(statement, self._client)

    def _new_readings(self) -> list[dict[str, object]]:
        history = self._readings.to_json(since=self._readings_since)
        flat = [reading for series in history.values() for reading in series]
        return sorted(flat, key=lambda r: float(r["taken_at"]))[-MAX_READINGS_PER_HEARTBEAT:]  # type: ignore[arg-type]

    def _keep_event(self, event: PluginEvent) -> None:
        """Keeps an event for the control plane; a broken state dir must not break the caller."""
        try:
            self.state.add_event({**asdict(event), "kind": str(event.kind)})
        except OSError as exc:
            self.conditions.report("state", f"cannot write the agent state: {exc}", logging.ERROR)


def _why(exc: ControlPlaneError) -> str:
    if exc.status == 429:
        wait = "its own back-off" if exc.retry_after_s is None else f"{exc.retry_after_s:.0f} s"
        return f"rate limited, waiting {wait}: {exc}"
    return str(exc)


def _wire(parse: Callable[[object, str], T], items: list[dict[str, Any]], what: str) -> list[T]:
    """Items checked by the control plane's own parser; one it would refuse is dropped here.

    A heartbeat the control plane refuses stores nothing, so one bad item (an event an
    older host wrote in another shape, a reading taken before the clock was set) would
    block every heartbeat after it.
    """
    checked = []
    for item in items:
        try:
            checked.append(parse(item, what))
        except ReportError as exc:
            log.warning("not reporting %s: %s", what, exc)
    return checked
