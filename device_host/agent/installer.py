"""Converging on the signed desired state: verify, fetch, load, swap, remember, revert."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from device_host.agent.artifacts import ArtifactRefused, ArtifactStore
from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError
from device_host.agent.state import AcceptedRelease, AgentState
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


class Installer:
    """Applies desired states one at a time; every refusal is an event, never an exception."""

    def __init__(
        self,
        manager: PluginManager,
        state: AgentState,
        store: ArtifactStore,
        trusted: Mapping[str, Ed25519PublicKey],
    ) -> None:
        self._manager = manager
        self._state = state
        self._store = store
        self._trusted = trusted
        self._installed_at: dict[str, float] = {}

    def check_desired(self, envelope: object, device_id: str) -> dict[str, object]:
        """Verifies a desired-state envelope addressed to this device; raises StatementError."""
        statement = verify(envelope, self._trusted, DESIRED_STATE_TYPE)
        if statement.get("device_id") != device_id:
            raise StatementError("desired state is addressed to another device")
        if not isinstance(statement.get("sequence"), int):
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
            except (StatementError, PluginLoadError, OSError) as exc:
                self._manager.refuse(plugin, "?", f"cannot restore the accepted release: {exc}")

    def converge(self, statement: dict[str, object], client: ControlPlaneClient) -> None:
        """Brings the plugins in line with a verified desired-state statement."""
        sequence = int(statement["sequence"])  # type: ignore[call-overload]
        wanted: dict[str, Release] = {}
        for envelope in statement["releases"]:  # type: ignore[attr-defined]
            try:
                release = Release.from_envelope(envelope, self._trusted)
            except StatementError as exc:
                self._refuse(_plugin_of(envelope), "?", str(exc))
                continue
            wanted[release.plugin] = release
        for release in wanted.values():
            self._apply(release, client)
        with self._state as data:
            unwanted = [name for name in data.releases if name not in wanted]
            for name in unwanted:
                del data.releases[name]
            data.desired_sequence = max(data.desired_sequence, sequence)
        for name in unwanted:
            self._manager.remove(name)
            self._manager.events.add(name, "-", EventKind.REMOVED, "no longer assigned")
        self._prune_artifacts()

    def revert_failing(self, client: ControlPlaneClient | None) -> None:
        """Reverts a plugin quarantined soon after an update to its last good release."""
        now = time.monotonic()
        for plugin, installed_at in list(self._installed_at.items()):
            if now - installed_at > REVERT_WINDOW_S:
                del self._installed_at[plugin]
                continue
            slot = self._manager.slot(plugin)
            if slot is None or slot.state() is not PluginState.QUARANTINED:
                continue
            del self._installed_at[plugin]
            self._revert(plugin, client)

    def _apply(self, release: Release, client: ControlPlaneClient) -> None:
        with self._state as data:
            current = data.releases.get(release.plugin)
            highest = data.highest_serial.get(release.plugin, 0)
            failed = release.serial in data.failed_serials.get(release.plugin, [])
        if current is not None and current.serial == release.serial:
            return
        if failed:
            return  # reported when it failed; a fix comes as a new serial
        if release.serial <= highest:
            self._refuse(
                release.plugin,
                release.version,
                f"serial {release.serial} is not above the accepted {highest} "
                "(rollback protection)",
            )
            self._mark_failed(release)
            return
        try:
            path = self._store.fetch(release, client)
            self._manager.install(release.manifest, path)
        except (ArtifactRefused, ControlPlaneError) as exc:
            self._refuse(release.plugin, release.version, str(exc))
            if isinstance(exc, ArtifactRefused):
                self._mark_failed(release)
            return
        except PluginLoadError:
            self._mark_failed(release)  # the slot recorded and logged the reason
            return
        with self._state as data:
            if current is not None:
                data.last_good[release.plugin] = current
            data.releases[release.plugin] = AcceptedRelease(release.serial, release.envelope)
            data.highest_serial[release.plugin] = release.serial
        if current is not None:
            self._installed_at[release.plugin] = time.monotonic()
        log.info("installed %s %s (serial %d)", release.plugin, release.version, release.serial)

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
        except (
            StatementError,
            ArtifactRefused,
            ControlPlaneError,
            PluginLoadError,
            OSError,
        ) as exc:
            self._refuse(plugin, "?", f"cannot revert to the last good release: {exc}")
            return
        with self._state as data:
            data.failed_serials.setdefault(plugin, []).append(bad.serial)
            data.releases[plugin] = good
        detail = f"serial {bad.serial} kept trapping after install; back on {release.version}"
        self._manager.events.add(plugin, release.version, EventKind.REVERTED, detail)
        log.warning("reverted %s: %s", plugin, detail)

    def _mark_failed(self, release: Release) -> None:
        with self._state as data:
            data.failed_serials.setdefault(release.plugin, []).append(release.serial)

    def _refuse(self, plugin: str, version: str, reason: str) -> None:
        self._manager.refuse(plugin, version, reason)

    def _prune_artifacts(self) -> None:
        with self._state as data:
            records = [*data.releases.values(), *data.last_good.values()]
        keep = {_sha256_of(r.envelope) for r in records}
        self._store.prune(keep)


def _sha256_of(envelope: dict[str, str]) -> str:
    """The artifact digest of an envelope this device already verified and accepted."""
    return str(json.loads(envelope["statement"])["artifact"]["sha256"])


def _plugin_of(envelope: object) -> str:
    """Best effort name for reporting a release that failed verification."""
    try:
        return str(json.loads(envelope["statement"])["plugin"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return "unknown"
