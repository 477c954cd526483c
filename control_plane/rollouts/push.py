"""Pushing a new desired state to devices, in the background, best effort.

A push only shortens the wait: a device that misses one converges from the desired state
in its next heartbeat answer. So failures are logged, never retried, and never block the
request that changed the desired state.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from fleet_common.wire import paths

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
WORKERS = 8

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


@dataclass(frozen=True)
class Push:
    """One signed desired-state envelope (JSON text) for one device's agent."""

    device: str
    agent_url: str
    envelope: str


def push_desired_states(pushes: list[Push]) -> list[Future[bool]]:
    """Queues the pushes on a small thread pool and returns at once."""
    executor = _pool()
    return [executor.submit(deliver, push) for push in pushes if push.agent_url]


def deliver(push: Push) -> bool:
    """POSTs one envelope; True when the device accepted it (202)."""
    url = push.agent_url.rstrip("/") + paths.PUSH_DESIRED_STATE
    request = urllib.request.Request(
        url,
        data=push.envelope.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode(errors="replace")
        log.warning("device %s refused its desired state (%s): %s", push.device, exc.code, detail)
        return False
    except (urllib.error.URLError, OSError) as exc:
        log.warning(
            "cannot push to device %s at %s (%s); it converges on its next heartbeat",
            push.device,
            url,
            getattr(exc, "reason", exc),
        )
        return False
    log.info("pushed desired state to device %s (%s)", push.device, status)
    return status == 202


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="push")
        return _executor
