"""Each plugin's key-value store: held in memory, written to flash in coalesced atomic flushes.

A plugin's ``set`` changes memory only; a flusher thread writes each changed store at most
once per flush interval, and `KvStores.close` writes what is left at shutdown. A plugin that
rewrites a value every tick therefore costs the flash one store-sized write per interval, not
one per call, and every write is also charged to the plugin's budget of bytes per minute.
A kill -9 loses at most the writes of the last interval; files are replaced atomically, so a
store on disk is never torn.

Stores are keyed by plugin name, not version, so state and budget survive hot swaps.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from fleet_common.atomic import atomic_write_bytes
from fleet_common.manifest import DEFAULT_KV_WRITE_BYTES_PER_MIN

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 256
FLUSH_INTERVAL_S = 5.0
FORMAT = 2
"""Version 2 stores values as text; version 1 (a bare object of base64 values) is migrated."""

Clock = Callable[[], float]


class KvError(StrEnum):
    """Values are the WIT ``kv-error`` case names."""

    QUOTA_EXCEEDED = "quota-exceeded"
    INVALID_KEY = "invalid-key"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate-limited"


class WriteBudget:
    """A token bucket of bytes that refills at ``per_min / 60`` bytes a second.

    It holds one minute's budget, or the plugin's whole quota if that is larger, so a plugin
    can always write one value of any size it may store and then waits for the refill.
    Not thread-safe: its store calls it under the store's lock.
    """

    def __init__(self, per_min: int, quota_bytes: int, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._rate = per_min / 60.0
        self._capacity = float(max(per_min, quota_bytes))
        self._tokens = self._capacity
        self._at = clock()

    def configure(self, per_min: int, quota_bytes: int) -> None:
        """Applies a new version's limits; bytes already spent stay spent."""
        self._refill()
        self._rate = per_min / 60.0
        self._capacity = float(max(per_min, quota_bytes))
        self._tokens = min(self._tokens, self._capacity)

    def take(self, size: int) -> bool:
        """Spends ``size`` bytes if the bucket holds them; otherwise spends nothing."""
        self._refill()
        if size > self._tokens:
            return False
        self._tokens -= size
        return True

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now


class PluginKv:
    """One plugin's store; every method is safe to call from any thread.

    Values are text. Limits are checked before any copy: a value longer (in characters)
    than the quota is refused before it is encoded.
    """

    def __init__(
        self,
        path: Path,
        quota_bytes: int,
        write_bytes_per_min: int = DEFAULT_KV_WRITE_BYTES_PER_MIN,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self._path = path
        self.quota_bytes = quota_bytes
        self._budget = WriteBudget(write_bytes_per_min, quota_bytes, clock)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._data, migrated = _read(path)
        self._changes = 1 if migrated else 0
        self._flushed = 0
        """Writes are counted; the store is dirty while the last flushed count lags behind."""
        self._sizes = {k: _utf8_len(k) + _utf8_len(v) for k, v in self._data.items()}
        self._used = sum(self._sizes.values())
        self._unwritable: str | None = None
        self.flushes = 0
        self.flushed_bytes = 0
        """What flushes wrote to disk so far, for benchmarks and metrics."""

    def configure(self, quota_bytes: int, write_bytes_per_min: int) -> None:
        """Applies the limits of the version now using the store."""
        with self._lock:
            self.quota_bytes = quota_bytes
            self._budget.configure(write_bytes_per_min, quota_bytes)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._data)

    def used_bytes(self) -> int:
        with self._lock:
            return self._used

    @property
    def dirty(self) -> bool:
        """Whether memory holds writes that are not on disk yet."""
        with self._lock:
            return self._changes != self._flushed

    def set(self, key: str, value: str) -> KvError | None:
        """Stores ``value``; returns the error instead of raising, as the plugin sees it."""
        if _invalid_key(key):
            return KvError.INVALID_KEY
        if len(value) > self.quota_bytes:
            return KvError.QUOTA_EXCEEDED
        size = _utf8_len(key) + _utf8_len(value)
        with self._lock:
            if self._unwritable is not None:
                return KvError.UNAVAILABLE
            if self._data.get(key) == value:
                return None
            used = self._used - self._sizes.get(key, 0) + size
            if used > self.quota_bytes:
                return KvError.QUOTA_EXCEEDED
            if not self._budget.take(size):
                return KvError.RATE_LIMITED
            self._data[key], self._sizes[key] = value, size
            self._used = used
            self._changes += 1
        return None

    def delete(self, key: str) -> KvError | None:
        """Removes ``key``; charged the key's bytes, since the store is rewritten."""
        if _invalid_key(key):
            return KvError.INVALID_KEY
        with self._lock:
            if self._unwritable is not None:
                return KvError.UNAVAILABLE
            if key not in self._data:
                return None
            if not self._budget.take(_utf8_len(key)):
                return KvError.RATE_LIMITED
            del self._data[key]
            self._used -= self._sizes.pop(key)
            self._changes += 1
        return None

    def flush(self) -> bool:
        """Writes the store if it changed since the last flush; False if the disk refused.

        While the disk refuses, writes answer ``unavailable`` (memory would otherwise fill
        with what can never be kept); every later flush tries again.
        """
        with self._flush_lock:
            with self._lock:
                if self._changes == self._flushed:
                    return True
                snapshot, changes = dict(self._data), self._changes
            encoded = json.dumps(
                {"format": FORMAT, "values": snapshot}, ensure_ascii=False, sort_keys=True
            ).encode()
            try:
                atomic_write_bytes(self._path, encoded)
            except OSError as exc:
                with self._lock:
                    first, self._unwritable = self._unwritable is None, str(exc)
                if first:
                    log.error("cannot persist key-value store %s: %s", self._path, exc)
                return False
            with self._lock:
                recovered, self._unwritable = self._unwritable is not None, None
                self._flushed = changes
                self.flushes += 1
                self.flushed_bytes += len(encoded)
            if recovered:
                log.info("key-value store %s is persisted again", self._path)
            return True


class KvStores:
    """Hands each plugin the same store for as long as the host runs, and flushes them all."""

    def __init__(self, directory: Path, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._directory = directory
        self._flush_interval_s = flush_interval_s
        self._stores: dict[str, PluginKv] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def for_plugin(
        self,
        plugin: str,
        quota_bytes: int,
        write_bytes_per_min: int = DEFAULT_KV_WRITE_BYTES_PER_MIN,
    ) -> PluginKv:
        """The plugin's store, configured with the limits of the version asking for it."""
        with self._lock:
            store = self._stores.get(plugin)
            if store is None:
                path = self._directory / f"{plugin}.json"
                store = PluginKv(path, quota_bytes, write_bytes_per_min)
                self._stores[plugin] = store
            else:
                store.configure(quota_bytes, write_bytes_per_min)
            if self._flusher is None and not self._stop.is_set():
                self._flusher = threading.Thread(target=self._run, name="kv-flush", daemon=True)
                self._flusher.start()
            return store

    def flush_all(self) -> None:
        """Writes every store that changed; a store the disk refuses is retried next time."""
        with self._lock:
            stores = list(self._stores.values())
        for store in stores:
            store.flush()

    def close(self) -> None:
        """Stops the flusher and writes what is left; called when the host stops."""
        self._stop.set()
        flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout=10)
        self.flush_all()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval_s):
            try:
                self.flush_all()
            except Exception:
                log.exception("key-value flush failed")


def _invalid_key(key: str) -> bool:
    return not key or len(key) > MAX_KEY_BYTES or _utf8_len(key) > MAX_KEY_BYTES


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _read(path: Path) -> tuple[dict[str, str], bool]:
    """The stored values, and whether they must be rewritten (migrated from format 1)."""
    try:
        raw = json.loads(path.read_bytes())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        if raw.get("format") == FORMAT:
            values = raw.get("values")
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise ValueError("values are not an object of strings")
            return values, False
        return _migrate_v1(path, raw), True
    except (FileNotFoundError, NotADirectoryError):
        return {}, False
    except (OSError, ValueError) as exc:
        broken = path.with_suffix(".corrupt")
        log.error("key-value store %s is unreadable (%s); moved to %s", path, exc, broken)
        path.replace(broken)
        return {}, False


def _migrate_v1(path: Path, raw: dict[str, object]) -> dict[str, str]:
    """Reads a format-1 store (base64 bytes); values that are not UTF-8 text cannot be kept.

    If any is dropped, the old file is kept beside the store as ``<plugin>.v1.json``.
    """
    values, dropped = {}, []
    for key, encoded in raw.items():
        if not isinstance(encoded, str):
            raise ValueError(f"value of {key!r} is not a string")
        try:
            values[str(key)] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except binascii.Error:
            raise ValueError(f"value of {key!r} is not base64") from None
        except UnicodeDecodeError:
            dropped.append(key)
    if dropped:
        kept = path.with_suffix(".v1.json")
        path.replace(kept)
        log.error(
            "key-value store %s: values of %s are not text and were dropped; old file kept as %s",
            path,
            sorted(dropped),
            kept,
        )
    log.info("key-value store %s migrated to format %d", path, FORMAT)
    return values
