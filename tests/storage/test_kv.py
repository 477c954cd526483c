"""Plugin key-value stores: quota, write budget, coalesced flushes, migration, corrupt files."""

from __future__ import annotations

import base64
import json
import shutil

from device_host.storage.kv import KvError, KvStores, PluginKv
from tests.support import wait_until

UNLIMITED = 1 << 40


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tripwire(str):
    """A value that fails the test if anything encodes (copies) it."""

    __slots__ = ()

    def encode(self, *_: object, **__: object) -> bytes:  # type: ignore[override]
        raise AssertionError("the value was encoded before its size was checked")


def _kv(tmp_path, quota=100, per_min=UNLIMITED, clock=None):
    extra = {} if clock is None else {"clock": clock}
    return PluginKv(tmp_path / "p.json", quota, per_min, **extra)


def test_values_persist_across_store_objects_once_flushed(tmp_path):
    kv = _kv(tmp_path)
    kv.set("fan", "on")
    kv.flush()

    assert _kv(tmp_path).get("fan") == "on"


def test_keys_and_values_count_against_the_quota_in_utf8_bytes(tmp_path):
    kv = _kv(tmp_path, quota=10)

    assert kv.set("abc", "12345é") is None
    assert kv.set("abc", "123456é") is KvError.QUOTA_EXCEEDED
    assert kv.get("abc") == "12345é"
    assert kv.used_bytes() == 10


def test_a_value_longer_than_the_quota_is_refused_before_it_is_encoded(tmp_path):
    kv = _kv(tmp_path, quota=1 << 20)

    assert kv.set("big", Tripwire("é" * ((1 << 20) + 1))) is KvError.QUOTA_EXCEEDED
    assert kv.keys() == []


def test_empty_and_overlong_keys_are_invalid(tmp_path):
    kv = _kv(tmp_path, quota=10_000)

    assert kv.set("", "x") is KvError.INVALID_KEY
    assert kv.set("k" * 257, "x") is KvError.INVALID_KEY
    assert kv.set("é" * 129, "x") is KvError.INVALID_KEY
    assert kv.delete("") is KvError.INVALID_KEY


def test_delete_removes_the_key_and_frees_quota(tmp_path):
    kv = _kv(tmp_path, quota=10)
    kv.set("a", "123456789")

    assert kv.delete("a") is None
    assert kv.keys() == []
    assert kv.set("b", "123456789") is None


def test_writes_stay_in_memory_until_one_flush_writes_them_all(tmp_path):
    kv = _kv(tmp_path, quota=1 << 20)
    for n in range(100):
        kv.set("counter", str(n))

    assert not (tmp_path / "p.json").exists()
    assert kv.flush()
    assert (kv.flushes, _kv(tmp_path).get("counter")) == (1, "99")


def test_a_flush_with_nothing_changed_writes_nothing(tmp_path):
    kv = _kv(tmp_path)
    kv.set("fan", "on")
    kv.flush()

    kv.set("fan", "on")
    kv.flush()

    assert (kv.dirty, kv.flushes) == (False, 1)


def test_writes_beyond_the_budget_are_rate_limited_until_it_refills(tmp_path):
    clock = FakeClock()
    kv = _kv(tmp_path, quota=1200, per_min=1200, clock=clock)

    assert kv.set("a", "x" * 1099) is None
    assert kv.set("a", "y" * 1099) is KvError.RATE_LIMITED
    clock.now += 49  # 1200 bytes a minute: 20 a second, 980 back after 49 s
    assert kv.set("a", "y" * 1099) is KvError.RATE_LIMITED
    clock.now += 1
    assert kv.set("a", "y" * 1099) is None
    assert kv.get("a") == "y" * 1099


def test_a_value_as_large_as_the_quota_can_be_written_even_above_a_minutes_budget(tmp_path):
    clock = FakeClock()
    kv = _kv(tmp_path, quota=1 << 20, per_min=64 << 10, clock=clock)

    assert kv.set("blob", "x" * ((1 << 20) - 4)) is None
    assert kv.set("blob", "y" * ((1 << 20) - 4)) is KvError.RATE_LIMITED
    clock.now += 16 * 60
    assert kv.set("blob", "y" * ((1 << 20) - 4)) is None


def test_an_unchanged_value_costs_no_budget(tmp_path):
    kv = _kv(tmp_path, quota=1024, per_min=1024, clock=FakeClock())
    kv.set("a", "x" * 1000)

    assert kv.set("a", "x" * 1000) is None
    assert kv.set("b", "x" * 20) is None


def test_a_corrupt_file_is_set_aside_and_the_store_starts_empty(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{not json")

    kv = _kv(tmp_path)

    assert kv.keys() == []
    assert (tmp_path / "p.corrupt").read_text() == "{not json"


def test_a_store_the_disk_refuses_answers_unavailable_until_a_flush_succeeds(tmp_path):
    folder = tmp_path / "kv"
    kv = KvStores(folder).for_plugin("p", 100, UNLIMITED)
    kv.set("a", "1")
    kv.flush()
    shutil.rmtree(folder)
    folder.write_text("a file where the directory was")
    kv.set("a", "2")

    assert kv.flush() is False
    assert kv.set("a", "3") is KvError.UNAVAILABLE
    folder.unlink()
    folder.mkdir()
    assert kv.flush() is True
    assert kv.set("a", "3") is None


def test_one_plugin_gets_the_same_store_and_budget_across_versions(tmp_path):
    stores = KvStores(tmp_path)
    first = stores.for_plugin("thermostat", 1024, 1024)
    first.set("a", "x" * 1000)

    second = stores.for_plugin("thermostat", 2048, 1024)

    assert first is second
    assert second.quota_bytes == 2048
    assert second.set("b", "x" * 1000) is KvError.RATE_LIMITED
    stores.close()


def test_a_format_1_store_is_read_as_text_and_rewritten_in_format_2(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"mode": base64.b64encode("auto é".encode()).decode()}))

    kv = _kv(tmp_path)

    assert kv.get("mode") == "auto é"
    assert kv.flush()
    assert json.loads(path.read_text()) == {"format": 2, "values": {"mode": "auto é"}}


def test_format_1_values_that_are_not_text_are_dropped_and_the_old_file_kept(tmp_path):
    path = tmp_path / "p.json"
    old = json.dumps({"mode": base64.b64encode(b"auto").decode(), "raw": "/w=="})
    path.write_text(old)

    kv = _kv(tmp_path)

    assert kv.keys() == ["mode"]
    assert (tmp_path / "p.v1.json").read_text() == old


def test_the_flusher_writes_changed_stores_without_being_asked(tmp_path):
    stores = KvStores(tmp_path, flush_interval_s=0.05)
    kv = stores.for_plugin("p", 100, UNLIMITED)

    kv.set("fan", "on")

    wait_until(lambda: not kv.dirty, timeout=10, what="the flusher")
    assert json.loads((tmp_path / "p.json").read_text())["values"] == {"fan": "on"}
    stores.close()


def test_closing_the_stores_writes_what_is_left(tmp_path):
    stores = KvStores(tmp_path, flush_interval_s=3600)
    stores.for_plugin("p", 100, UNLIMITED).set("fan", "off")

    stores.close()

    assert PluginKv(tmp_path / "p.json", 100).get("fan") == "off"
