"""Converging on the signed desired state: verify, fetch, load, swap, remember, revert."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from device_host.agent.artifacts import ArtifactStore, DownloadFailed, fetch_compiled
from device_host.agent.conditions import Conditions
from device_host.agent.control_plane import ControlPlaneClient
from device_host.agent.state import AcceptedRelease, AgentState, HeldBack
from device_host.plugins.manager import PluginManager
from device_host.plugins.slot import PluginState
from device_host.runtime import Delivered
from fleet_common.errors import PluginLoadError
from fleet_common.wire.events import EventKind
from fleet_common.wire.statements import (
    CompiledArtifact,
    DesiredState,
    Release,
    StatementError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Offer = tuple[CompiledArtifact | str, dict[str, str]]
"""A verified compiled statement with its envelope, or why it was refused."""

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
        *,
        compile_locally: bool,
    ) -> None:
        self._manager = manager
        self._compile_locally = compile_locally
        self._state = state
        self._store = store
        self._trusted = trusted
        self._conditions = conditions
        self._stop = stop
        self._installed_at: dict[str, float] = {}
        self._sequence = -1
        self._offered: dict[str, list[Offer]] = {}
        """Per plugin, the compiled artifacts of the desired state being converged on, each
        verified once: the statement with its envelope, or why it was refused."""
        self.incomplete = False
        """Whether the last convergence left a download to retry."""
        self.converged: object = None
        """The releases of the last desired state converged on (none yet after a start)."""

    def check_desired(self, envelope: object, device_id: str) -> DesiredState:
        """Verifies a desired-state envelope addressed to this device; raises StatementError."""
        return DesiredState.from_envelope(envelope, self._trusted, device_id)

    def restore(self) -> None:
        """At start-up, runs what was accepted before, from local artifacts (no network)."""
        with self._state as data:
            accepted = dict(data.releases)
        for plugin, record in accepted.items():
            try:
                release = Release.from_envelope(record.envelope, self._trusted)
                self._manager.install(release.manifest, self._local_source(release, record))
            except (StatementError, OSError) as exc:
                self._manager.refuse(
                    plugin, _version_of(record.envelope), f"cannot restore the release: {exc}"
                )
            except PluginLoadError:
                pass  # the slot recorded and logged the reason

    def converge(self, desired: DesiredState, client: ControlPlaneClient) -> None:
        """Brings the plugins in line with a verified desired state.

        A release in it that fails verification is refused, and its plugin keeps running
        what it runs: an unreadable entry is not an unassignment.
        """
        sequence = desired.sequence
        if sequence != self._sequence:
            self._conditions.clear_prefix("refused ")
            self._conditions.clear_prefix("download ")
            self._conditions.clear_prefix("no artifact ")
            self._sequence = sequence
        self._offered = self._verify_offers(desired.compiled)
        wanted: dict[str, Release] = {}
        unreadable: set[str] = set()
        for envelope in desired.releases:
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
        self.converged = (desired.releases, desired.compiled)
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
            if slot is None or serving is None:
                continue
            # Serving the last good code is a revert, unless the accepted release is that
            # code: a rollback is a new serial for the last good bytes.
            went_back = serving.sha256 == self._last_good_sha256(plugin)
            if went_back and serving.sha256 != self._sha256(plugin):
                del self._installed_at[plugin]
                self._record_revert(plugin, serving.manifest.version, "the host went back")
            elif slot.state() is PluginState.QUARANTINED:
                del self._installed_at[plugin]
                self._revert(plugin, client, failed=serving.manifest.version)

    def referenced_sha256s(self) -> set[str]:
        """Artifacts a revert or a restore may load: accepted releases and the last good ones."""
        with self._state as data:
            records = [*data.releases.values(), *data.last_good.values()]
        return {_sha256_of(r.envelope) for r in records}

    def _last_good_sha256(self, plugin: str) -> str | None:
        with self._state as data:
            good = data.last_good.get(plugin)
        return None if good is None else _sha256_of(good.envelope)

    def _sha256(self, plugin: str) -> str | None:
        """The bytes of the accepted release of ``plugin``."""
        with self._state as data:
            current = data.releases.get(plugin)
        return None if current is None else _sha256_of(current.envelope)

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
        compiled = self._compiled_for(release)
        try:
            if compiled is not None:
                source: Path | Delivered = self._fetch_compiled(release, compiled, client)
            elif self._compile_locally:
                source = self._download(release, client)
            else:
                return False  # waits for the control plane to compile for this engine
        except DownloadFailed:
            return False
        try:
            self._manager.install(release.manifest, source)
        except PluginLoadError:
            self._hold(release, sequence, "refused")  # the slot recorded and logged why
            return True
        envelope = None if compiled is None else compiled[1]
        with self._state as data:
            if current is not None:
                data.last_good[plugin] = current
            data.releases[plugin] = AcceptedRelease(release.serial, release.envelope, envelope)
            if release.serial >= highest:
                data.highest_serial[plugin] = release.serial
                data.highest_sha256[plugin] = release.sha256
            data.held.pop(plugin, None)
        if current is not None:
            self._installed_at[plugin] = time.monotonic()
        log.info("installed %s %s (serial %d)", plugin, release.version, release.serial)
        return True

    def _compiled_for(self, release: Release) -> tuple[CompiledArtifact, dict[str, str]] | None:
        """The signed artifact of ``release`` for this engine, verified, with its envelope.

        Without one, reports why (an event the control plane shows on the version's page)
        once per desired state; the caller compiles locally only if the config allows.
        """
        engine_key = self._manager.artifacts.engine_key
        problems = []
        for compiled, envelope in self._offered.get(release.plugin, []):
            if isinstance(compiled, str):
                problems.append(f"refused a compiled artifact: {compiled}")
            elif (problem := compiled.problem_for(release, engine_key)) is not None:
                problems.append(f"refused a compiled artifact: {problem}")
            else:
                return compiled, envelope
        why = "; ".join(problems) or "none came with the release"
        fallback = "compiling it here" if self._compile_locally else "waiting for one"
        detail = f"no compiled artifact for engine key {engine_key[:16]} ({why}); {fallback}"
        key = f"no artifact {release.plugin} {release.version} (serial {release.serial})"
        if self._conditions.report(key, detail):
            self._state.add_event(_event(release, EventKind.NO_ARTIFACT, detail))
        return None

    def _verify_offers(self, envelopes: list[object]) -> dict[str, list[Offer]]:
        offers: dict[str, list[Offer]] = {}
        for envelope in envelopes:
            signed = dict(envelope) if isinstance(envelope, dict) else {}
            offer: Offer
            try:
                verified = CompiledArtifact.from_envelope(envelope, self._trusted)
            except StatementError as exc:
                offer, plugin = (str(exc), signed), _plugin_of(envelope)
            else:
                offer, plugin = (verified, signed), verified.plugin
            offers.setdefault(plugin, []).append(offer)
        return offers

    def _fetch_compiled(
        self,
        release: Release,
        compiled: tuple[CompiledArtifact, dict[str, str]],
        client: ControlPlaneClient | None,
    ) -> Delivered:
        artifact = compiled[0]
        target = self._manager.artifacts.artifact_path(release.sha256)
        if client is None:
            if not target.exists():
                raise DownloadFailed("the compiled artifact is not on this device")
        else:
            self._retrying(release, lambda: fetch_compiled(artifact, client, target))
        return Delivered(release.sha256, release.size, artifact.footprint)

    def _local_source(self, release: Release, record: AcceptedRelease) -> Path | Delivered:
        """What an accepted release loads from without the network: its compiled artifact
        (verified again) or its component."""
        if record.compiled is not None:
            artifact = CompiledArtifact.from_envelope(record.compiled, self._trusted)
            problem = artifact.problem_for(release, self._manager.artifacts.engine_key)
            if problem is not None:
                raise StatementError(f"its compiled artifact no longer fits: {problem}")
            return Delivered(release.sha256, release.size, artifact.footprint)
        return self._store.path_for(release.sha256)

    def _download(self, release: Release, client: ControlPlaneClient) -> Path:
        """The verified component, after up to DOWNLOAD_ATTEMPTS tries with jittered back-off."""
        return self._retrying(release, lambda: self._store.fetch(release, client))

    def _retrying(self, release: Release, fetch: Callable[[], T]) -> T:
        """``fetch()``, after up to DOWNLOAD_ATTEMPTS tries with jittered back-off."""
        key = f"download {release.plugin} {release.version} (serial {release.serial})"
        attempt, delay = 1, DOWNLOAD_BACKOFF_S
        while True:
            try:
                path = fetch()
            except DownloadFailed as exc:
                message = f"attempt {attempt}/{DOWNLOAD_ATTEMPTS} failed, will retry: {exc}"
                if self._conditions.report(key, message):
                    self._state.add_event(_event(release, EventKind.DOWNLOAD_FAILED, str(exc)))
                if attempt == DOWNLOAD_ATTEMPTS or self._stop.wait(
                    delay * random.uniform(0.5, 1.5)
                ):
                    raise
                attempt, delay = attempt + 1, delay * 2
                continue
            self._conditions.clear(key)
            return path

    def _revert(self, plugin: str, client: ControlPlaneClient | None, failed: str) -> None:
        """Installs ``plugin``'s last good release in place of the ``failed`` version."""
        with self._state as data:
            good, bad = data.last_good.get(plugin), data.releases.get(plugin)
        if good is None or bad is None:
            return
        try:
            release = Release.from_envelope(good.envelope, self._trusted)
            source = self._local_source(release, good)
            if isinstance(source, Path) and not source.exists() and client is not None:
                source = self._store.fetch(release, client)
            self._manager.install(release.manifest, source)
        except (StatementError, DownloadFailed, PluginLoadError, OSError) as exc:
            self._refuse(plugin, "-", f"cannot revert to the last good release: {exc}")
            return
        self._record_revert(plugin, release.version, "reverted", failed=failed)

    def _record_revert(
        self, plugin: str, version: str, how: str, *, failed: str | None = None
    ) -> None:
        """Holds the reverted release back until a newer desired state asks for it again.

        With the ``failed`` version it also reports a REVERTED event naming that version (the
        control plane counts failures per version); the detail names ``version``, now serving.
        Without, the slot already reported going back by itself.
        """
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
        if failed is not None:
            self._manager.events.add(plugin, failed, EventKind.REVERTED, detail)
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


def _event(release: Release, kind: EventKind, detail: str) -> dict[str, object]:
    """A backlog event for the control plane about a release that is not a plugin event."""
    return {
        "at": time.time(),
        "plugin": release.plugin,
        "version": release.version,
        "kind": str(kind),
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
