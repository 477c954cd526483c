"""Instance pools and slots: parallel Stores, replacement after traps, and swaps mid-wait."""

from __future__ import annotations

import threading
import time

import pytest

from device_host.errors import PluginUnavailable, VersionRetired
from device_host.metrics import Metrics
from device_host.plugins.events import EventLog
from device_host.plugins.quarantine import QuarantinePolicy
from device_host.plugins.slot import PluginSlot
from device_host.runtime import GuestLog, load_version
from device_host.runtime._exports import HttpRequest
from device_host.runtime._pool import InstancePool
from fleet_common.manifest import load_manifest


@pytest.fixture
def hello(load_context, build):
    folder = build("hello")
    version = load_version(
        load_context,
        load_manifest(folder / "manifest.toml"),
        folder / "hello.wasm",
        GuestLog("hello"),
    )
    yield version
    version.retire()


def _page(version) -> bytes:  # type: ignore[no-untyped-def]
    return version.respond(HttpRequest("GET", "/"), lambda: None).body


def _hold(pool: InstancePool, release: threading.Event) -> threading.Thread:
    """Keeps the pool's only instance busy until ``release`` is set."""
    holding = threading.Event()

    def work(_instance) -> None:  # type: ignore[no-untyped-def]
        holding.set()
        release.wait(10)

    thread = threading.Thread(target=pool.run, args=(work,))
    thread.start()
    holding.wait(5)
    return thread


def _waiter_told_while(pool: InstancePool, action) -> list[BaseException]:  # type: ignore[no-untyped-def]
    """What a caller waiting for the pool's only (busy) instance is told when ``action`` runs."""
    release = threading.Event()
    holder = _hold(pool, release)
    outcome: list[BaseException] = []

    def wait_for_instance() -> None:
        try:
            pool.run(lambda _instance: None)
        except VersionRetired as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_instance)
    waiter.start()
    time.sleep(0.2)
    action()
    waiter.join(5)
    release.set()
    holder.join(5)
    return outcome


def test_a_caller_waiting_on_a_retired_pool_is_told_at_once(hello):
    pool = InstancePool(hello.new_instance, size=1, wait_s=10)
    started = time.monotonic()

    outcome = _waiter_told_while(pool, pool.retire)

    assert len(outcome) == 1
    assert time.monotonic() - started < 1.5
    assert pool.live_instances == 0


def test_a_busy_pool_answers_unavailable_after_its_wait(hello):
    pool = InstancePool(hello.new_instance, size=1, wait_s=0.3)
    release = threading.Event()
    holder = _hold(pool, release)

    with pytest.raises(PluginUnavailable, match="stayed busy"):
        pool.run(lambda _instance: None)
    release.set()
    holder.join(5)


def test_a_caller_waiting_when_a_newer_version_takes_over_is_redirected(hello):
    pool = InstancePool(hello.new_instance, size=1, wait_s=10)

    outcome = _waiter_told_while(pool, pool.redirect_waiters)

    assert len(outcome) == 1
    assert pool.run(lambda _instance: "still serves later calls") == "still serves later calls"


def test_after_a_swap_calls_go_to_the_new_version_and_the_old_one_stays_warm(
    hello, load_context, build
):
    slot = PluginSlot("hello", QuarantinePolicy(), EventLog(), Metrics())
    slot.swap(hello)
    folder = build("hello", replace={"version 1": "version 2"}, version="2.0.0", label="hello-v2")
    newer = load_version(
        load_context,
        load_manifest(folder / "manifest.toml"),
        folder / "hello.wasm",
        GuestLog("hello"),
    )

    slot.swap(newer)

    assert slot.call(_page) == b"hello from version 2"
    assert slot.to_json()["probation"]["fallback_version"] == hello.manifest.version
    assert hello.respond(HttpRequest("GET", "/"), lambda: None).body == b"hello from version 1"
    slot.clear()


def test_parallel_calls_use_separate_instances(hello):
    seen: set[int] = set()
    barrier = threading.Barrier(2)

    def work(instance) -> None:  # type: ignore[no-untyped-def]
        seen.add(id(instance))
        barrier.wait(5)

    pool = InstancePool(hello.new_instance, size=2, wait_s=10)
    threads = [threading.Thread(target=pool.run, args=(work,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert len(seen) == 2
