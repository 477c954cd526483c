"""A folder in the plugins directory that is no plugin at all is a source problem, not a slot."""

from __future__ import annotations

from tests.support import place_plugin


def test_a_folder_with_a_broken_manifest_is_an_event_not_a_failed_plugin(host_process, build):
    place_plugin(build("hello"), host_process.plugins_dir)
    broken = host_process.plugins_dir / "not-a-plugin"
    broken.mkdir()
    (broken / "manifest.toml").write_text('name = "x"\nversion = [unclosed\n')

    host_process.start(wait_for="ok")

    health = host_process.healthz()
    assert [p["name"] for p in health["plugins"]] == ["hello"]  # type: ignore[index]
    refusals = [e for e in health["events"] if e["plugin"] == "not-a-plugin"]  # type: ignore[attr-defined]
    assert [e["kind"] for e in refusals] == ["refused"]
    assert "manifest" in refusals[0]["detail"]
