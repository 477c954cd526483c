"""Each plugin's key-value store: a JSON file per plugin, rewritten atomically on every change.

Stores are keyed by plugin name, not version, so state survives hot swaps and restarts.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from enum import StrEnum
from pathlib import Path

from device_host.storage.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 256


class KvError(StrEnum):
    """Values are the WIT ``kv-error`` case names."""

    QUOTA_EXCEEDED = "quota-exceeded"
    INVALID_KEY = "invalid-key"
    UNAVAILABLE = "unavailable"


class PluginKv:
    """One plugin's store; every method is safe to call from any thread."""

    def __init__(self, path: Path, quota_bytes: int) -> None:
        self._path = path
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self._data = self._read(path)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._data)

    def used_bytes(self) -> int:
        with self._lock:
            return _size(self._data)

    def set(self, key: str, value: bytes) -> KvError | None:
        """Stores ``value``; returns the error instead of raising, as the plugin sees it."""
        if not key or len(key.encode()) > MAX_KEY_BYTES:
            return KvError.INVALID_KEY
        with self._lock:
            if self._data.get(key) == value:
                return None  # nothing to write: keep flash wear down
            updated = {**self._data, key: bytes(value)}
            if _size(updated) > self.quota_bytes:
                return KvError.QUOTA_EXCEEDED
            return self._commit(updated)

    def delete(self, key: str) -> KvError | None:
        with self._lock:
            if key not in self._data:
                return None
            updated = {k: v for k, v in self._data.items() if k != key}
            return self._commit(updated)

    def _commit(self, updated: dict[str, bytes]) -> KvError | None:
        encoded = {k: base64.b64encode(v).decode() for k, v in updated.items()}
        try:
            atomic_write_bytes(self._path, json.dumps(encoded, sort_keys=True).encode())
        except OSError as exc:
            log.error("cannot persist key-value store %s: %s", self._path, exc)
            return KvError.UNAVAILABLE
        self._data = updated
        return None

    @staticmethod
    def _read(path: Path) -> dict[str, bytes]:
        try:
            raw = json.loads(path.read_bytes())
            return {str(k): base64.b64decode(v) for k, v in raw.items()}
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            broken = path.with_suffix(".corrupt")
            log.error("key-value store %s is unreadable (%s); moved to %s", path, exc, broken)
            path.replace(broken)
            return {}


class KvStores:
    """Hands each plugin the same store object for as long as the host runs."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._stores: dict[str, PluginKv] = {}
        self._lock = threading.Lock()

    def for_plugin(self, plugin: str, quota_bytes: int) -> PluginKv:
        with self._lock:
            store = self._stores.get(plugin)
            if store is None:
                store = PluginKv(self._directory / f"{plugin}.json", quota_bytes)
                self._stores[plugin] = store
            store.quota_bytes = quota_bytes
            return store


def _size(data: dict[str, bytes]) -> int:
    return sum(len(k.encode()) + len(v) for k, v in data.items())
