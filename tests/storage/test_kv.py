"""Plugin key-value stores: quota, persistence, and surviving a corrupt file."""

from __future__ import annotations

import shutil

from device_host.storage.kv import KvError, KvStores, PluginKv


def test_values_persist_across_store_objects(tmp_path):
    PluginKv(tmp_path / "p.json", 100).set("fan", b"on")

    assert PluginKv(tmp_path / "p.json", 100).get("fan") == b"on"


def test_keys_and_values_count_against_the_quota(tmp_path):
    kv = PluginKv(tmp_path / "p.json", 10)

    assert kv.set("abc", b"1234567") is None
    assert kv.set("abc", b"12345678") is KvError.QUOTA_EXCEEDED
    assert kv.get("abc") == b"1234567"
    assert kv.used_bytes() == 10


def test_empty_and_overlong_keys_are_invalid(tmp_path):
    kv = PluginKv(tmp_path / "p.json", 10_000)

    assert kv.set("", b"x") is KvError.INVALID_KEY
    assert kv.set("k" * 257, b"x") is KvError.INVALID_KEY


def test_delete_removes_the_key_and_frees_quota(tmp_path):
    kv = PluginKv(tmp_path / "p.json", 10)
    kv.set("a", b"123456789")

    assert kv.delete("a") is None
    assert kv.keys() == []
    assert kv.set("b", b"123456789") is None


def test_a_corrupt_file_is_set_aside_and_the_store_starts_empty(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{not json")

    kv = PluginKv(path, 10)

    assert kv.keys() == []
    assert (tmp_path / "p.corrupt").read_text() == "{not json"


def test_a_failed_write_reports_unavailable_and_keeps_the_old_value(tmp_path):
    folder = tmp_path / "kv"
    kv = KvStores(folder).for_plugin("p", 100)
    kv.set("a", b"1")
    shutil.rmtree(folder)
    folder.write_text("a file where the directory was")

    assert kv.set("a", b"2") is KvError.UNAVAILABLE
    assert kv.get("a") == b"1"


def test_one_plugin_gets_the_same_store_across_versions(tmp_path):
    stores = KvStores(tmp_path)

    first = stores.for_plugin("thermostat", 100)
    second = stores.for_plugin("thermostat", 200)

    assert first is second
    assert second.quota_bytes == 200
