"""Converging on the signed desired state: verify, fetch, load, swap, remember, revert."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from device_host.agent.artifacts import ArtifactStore, DownloadFailed
from device_host.agent.conditions import Conditions
from device_host.agent.control_plane import ControlPlaneClient
from device_host.agent.state import AcceptedRelease, AgentState, HeldBack
from device_host.delivery.statements import (
    DESIRED_STATE_TYPE,
    Release,
    StatementError,
    verify,
)
from device_host.errors import PluginLoadError
from device_host.plugins.events import EventKind
from device_host.plugins.manager import PluginManager
from device_host.plugins.slot import PluginState

log = logging.getLogger(__name__)

REVERT_WINDOW_S = 300.0
"""A release that gets quarantined this soon after its install is reverted."""
DOWNLOAD_ATTEMPTS = 3
"""Per release and convergence; the next heartbeat starts another round."""
DOWNLOAD_BACKOFF_S = 1.0
"""Before the second attempt; doubles, with ±50 % jitter so a fleet does not retry in step."""


class Installer:
    """Applies desired states one at a time; every refusal is an event, never an exception.

    Only a release that is signed wrong (a bad signature, a rollback) or that does not load
    here is refused; a download that fails is retried, and a revert or refusal holds a
    release back only until a newer desired state asks for it again.
    """

    def __init__(
        self,
        manager: PluginManager,
        state: AgentState,
        store: ArtifactStore,
        trusted: Mapping[str, Ed25519PublicKey],
        conditions: Conditions,
        stop: threading.Event,
    ) -> None:
        self._manager = manager
        self._state = state
        self._store = store
        self._trusted = trusted
        self._conditions = conditions
        self._stop = stop
        self._installed_at: dict[str, float] = {}
        self._sequence = -1
        self.incomplete = False
        """Whether the last convergence left a download to retry."""
        self.converged: object = None
        """The releases of the last desired state converged on (none yet after a start)."""

    def check_desired(self, envelope: object, device_id: str) -> dict[str, object]:
        """Verifies a desired-state envelope addressed to this device; raises StatementError."""
        statement = verify(envelope, self._trusted, DESIRED_STATE_TYPE)
        if statement.get("device_id") != device_id:
            raise StatementError("desired state is addressed to another device")
        sequence = statement.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise StatementError("desired state has no sequence number")
        if not isinstance(statement.get("releases"), list):
            raise StatementError("desired state has no list of releases")
        return statement

    def restore(self) -> None:
        """At start-up, runs what was accepted before, from local artifacts (no network)."""
        with self._state as data:
            accepted = dict(data.releases)
        for plugin, record in accepted.items():
            try:
                release = Release.from_envelope(record.envelope, self._trusted)
                path = self._store.path_for(release.sha256)
                self._manager.install(release.manifest, path)
            except (StatementError, OSError) as exc:
                self._manager.refuse(
                    plugin, _version_of(record.envelope), f"cannot restore the release: {exc}"
                )
            except PluginLoadError:
                pass  # the slot recorded and logged the reason

    def converge(self, statement: dict[str, object], client: ControlPlaneClient) -> None:
        """Brings the plugins in line with a verified desired-state statement.

        A release in it that fails verification is refused, and its plugin keeps running
        what it runs: an unreadable entry is not an unassignment.
        """
        sequence = int(statement["sequence"])  # type: ignore[call-overload]
        if sequence != self._sequence:
            self._conditions.clear_prefix("refused ")
            self._conditions.clear_prefix("download ")
            self._sequence = sequence
        wanted: dict[str, Release] = {}
        unreadable: set[str] = set()
        for envelope in statement["releases"]:  # type: ignore[attr-defined]
            try:
                release = Release.from_envelope(envelope, self._trusted)
            except StatementError as exc:
                unreadable.add(_plugin_of(envelope))
                self._refuse(_plugin_of(envelope), _version_of(envelope), str(exc))
                continue
            wanted[release.plugin] = release
        complete = True
        for release in wanted.values():
            if self._stop.is_set():
                return
            complete = self._apply(release, sequence, client) and complete
        self.incomplete = not complete
        self.converged = statement["releases"]
        with self._state as data:
            kept = wanted.keys() | unreadable
            unwanted = [name for name in data.releases if name not in kept]
            for name in unwanted:
                del data.releases[name]
            for name in [name for name in data.held if name not in kept]:
                del data.held[name]
            data.desired_sequence = max(data.desired_sequence, sequence)
        for name in unwanted:
            self._manager.remove(name)
            self._manager.events.add(name, "-", EventKind.REMOVED, "no longer assigned")
        self._prune_artifacts()

    def revert_failing(self, client: ControlPlaneClient | None) -> None:
        """Reverts a plugin quarantined soon after an update to its last good release.

        Within its probation window the slot goes back to the previous version by itself;
        then the agent only records that the release was reverted.
        """
        now = time.monotonic()
        for plugin, installed_at in list(self._installed_at.items()):
            if now - installed_at > REVERT_WINDOW_S:
                del self._installed_at[plugin]
                continue
            slot = self._manager.slot(plugin)
            serving = slot.version if slot is not None else None
            if serving is not None and serving.sha256 == self._last_good_sha256(plugin):
                del self._installed_at[plugin]
                self._record_revert(plugin, serving.manifest.version, "the host went back")
            elif slot is not None and slot.state() is PluginState.QUARANTINED:
                del self._installed_at[plugin]
                self._revert(plugin, client)

    def referenced_sha256s(self) -> set[str]:
        """Artifacts a revert or a restore may load: accepted releases and the last good ones."""
        with self._state as data:
            records = [*data.releases.values(), *data.last_good.values()]
        return {_sha256_of(r.envelope) for r in records}

    def _last_good_sha256(self, plugin: str) -> str | None:
        with self._state as data:
            good = data.last_good.get(plugin)
        return None if good is None else _sha256_of(good.envelope)

    def _apply(self, release: Release, sequence: int, client: ControlPlaneClient) -> bool:
        """Installs ``release`` unless it runs or is held back; False: retry it later."""
        plugin = release.plugin
        with self._state as data:
            current = data.releases.get(plugin)
            highest = data.highest_serial.get(plugin, 0)
            highest_sha256 = data.highest_sha256.get(plugin)
            held = data.held.get(plugin)
        if current is not None and current.serial == release.serial:
            return True
        if held is not None and held.serial == release.serial and sequence <= held.sequence:
            return True
        if release.serial < highest or (
            release.serial == highest and highest_sha256 not in (None, release.sha256)
        ):
            reason = (
                f"serial {release.serial} is below the installed {highest} (rollback protection)"
                if release.serial < highest
                else f"serial {release.serial} names other bytes than the installed one"
            )
            self._hold(release, sequence, "rollback")
            self._refuse(plugin, release.version, reason)
            return True
        try:
            path = self._download(release, client)
        except DownloadFailed:
            return False
        try:
            self._manager.install(release.manifest, path)
        except PluginLoadError:
            self._hold(release, sequence, "refused")  # the slot recorded and logged why
            return True
        with self._state as data:
            if current is not None:
                data.last_good[plugin] = current
            data.releases[plugin] = AcceptedRelease(release.serial, release.envelope)
            if release.serial >= highest:
                data.highest_serial[plugin] = release.serial
                data.highest_sha256[plugin] = release.sha256
            data.held.pop(plugin, None)
        if current is not None:
            self._installed_at[plugin] = time.monotonic()
        log.info("installed %s %s (serial %d)", plugin, release.version, release.serial)
        return True

    def _download(self, release: Release, client: ControlPlaneClient) -> Path:
        """The verified artifact, after up to DOWNLOAD_ATTEMPTS tries with jittered back-off."""
        key = f"download {release.plugin} {release.version} (serial {release.serial})"
        attempt, delay = 1, DOWNLOAD_BACKOFF_S
        while True:
            try:
                path = self._store.fetch(release, client)
            except DownloadFailed as exc:
                message = f"attempt {attempt}/{DOWNLOAD_ATTEMPTS} failed, will retry: {exc}"
                if self._conditions.report(key, message):
                    self._state.add_event(_event(release, "download-failed", str(exc)))
                if attempt == DOWNLOAD_ATTEMPTS or self._stop.wait(
                    delay * random.uniform(0.5, 1.5)
                ):
                    raise
                attempt, delay = attempt + 1, delay * 2
                continue
            self._conditions.clear(key)
            return path

    def _revert(self, plugin: str, client: ControlPlaneClient | None) -> None:
        with self._state as data:
            good, bad = data.last_good.get(plugin), data.releases.get(plugin)
        if good is None or bad is None:
            return
        try:
            release = Release.from_envelope(good.envelope, self._trusted)
            path = self._store.path_for(release.sha256)
            if not path.exists() and client is not None:
                path = self._store.fetch(release, client)
            self._manager.install(release.manifest, path)
        except (StatementError, DownloadFailed, PluginLoadError, OSError) as exc:
            self._refuse(plugin, "-", f"cannot revert to the last good release: {exc}")
            return
        self._record_revert(plugin, release.version, "reverted", emit=True)

    def _record_revert(self, plugin: str, version: str, how: str, *, emit: bool = False) -> None:
        """Holds the reverted release back until a newer desired state asks for it again."""
        with self._state as data:
            good, bad = data.last_good.get(plugin), data.releases.get(plugin)
            sequence = data.desired_sequence
            if good is None or bad is None:
                return
            data.held[plugin] = HeldBack(bad.serial, sequence, "reverted")
            data.releases[plugin] = good
        detail = (
            f"serial {bad.serial} kept trapping after install ({how}); back on {version} "
            f"until a newer desired state than {sequence} asks for serial {bad.serial} again"
        )
        if emit:
            self._manager.events.add(plugin, version, EventKind.REVERTED, detail)
        log.warning("reverted %s: %s", plugin, detail)

    def _hold(self, release: Release, sequence: int, why: str) -> None:
        with self._state as data:
            data.held[release.plugin] = HeldBack(release.serial, sequence, why)

    def _refuse(self, plugin: str, version: str, reason: str) -> None:
        """Records a refusal once per desired state, however often that state is re-applied."""
        if self._conditions.report(f"refused {plugin} {version}", reason, logging.DEBUG):
            self._manager.refuse(plugin, version, reason)

    def _prune_artifacts(self) -> None:
        self._store.prune(self.referenced_sha256s())


def _event(release: Release, kind: str, detail: str) -> dict[str, object]:
    """A backlog event for the control plane about a release that is not a plugin event."""
    return {
        "at": time.time(),
        "plugin": release.plugin,
        "version": release.version,
        "kind": kind,
        "detail": detail,
    }


def _sha256_of(envelope: dict[str, str]) -> str:
    """The artifact digest of an envelope this device already verified and accepted."""
    return str(json.loads(envelope["statement"])["artifact"]["sha256"])


def _statement_field(envelope: object, key: str, default: str) -> str:
    """Best effort field of a release that failed verification, for reporting it."""
    try:
        value = json.loads(envelope["statement"])[key]  # type: ignore[index]
    except (TypeError, KeyError, ValueError, RecursionError):
        return default
    return str(value)[:64] if isinstance(value, str | int) else default


def _plugin_of(envelope: object) -> str:
    return _statement_field(envelope, "plugin", "unknown")


def _version_of(envelope: object) -> str:
    return _statement_field(envelope, "version", "?")
