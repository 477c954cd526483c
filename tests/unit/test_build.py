"""Building a plugin folder: errors point at the plugin's own file and line; builds are cached."""

from __future__ import annotations

import shutil

import pytest

from device_host.build import build_plugin
from device_host.errors import PluginBuildError
from tests.support import TEST_PLUGINS


@pytest.fixture
def hello_copy(tmp_path):
    folder = tmp_path / "hello"
    shutil.copytree(TEST_PLUGINS / "hello", folder, ignore=shutil.ignore_patterns("*.wasm"))
    return folder


def test_a_syntax_error_is_reported_with_the_plugins_file_and_line(hello_copy, tmp_path):
    app = hello_copy / "app.py"
    app.write_text(app.read_text().replace("GREETING = ", "GREETING = (", 1))

    with pytest.raises(PluginBuildError) as error:
        build_plugin(hello_copy, cache_dir=tmp_path / "cache")

    message = str(error.value)
    assert f'File "{app}", line 6' in message
    assert "SyntaxError: '(' was never closed" in message


def test_a_second_build_of_the_same_source_comes_from_the_cache(hello_copy, tmp_path):
    first = build_plugin(hello_copy, cache_dir=tmp_path / "cache")
    (hello_copy / "hello.wasm").unlink()

    second = build_plugin(hello_copy, cache_dir=tmp_path / "cache")

    assert (first.cached, second.cached) == (False, True)
    assert second.sha256 == first.sha256
    assert (hello_copy / "hello.wasm").stat().st_size > 1_000_000


def test_a_folder_without_app_py_is_refused(hello_copy):
    (hello_copy / "app.py").unlink()

    with pytest.raises(PluginBuildError, match=r"no app\.py"):
        build_plugin(hello_copy)
