"""Host configuration: TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from device_host.config import load_config
from device_host.errors import ConfigError
from tests.support import REPO


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host.toml"
    path.write_text(text)
    return path


CONTROL_PLANE = {"DEVICE_HOST_AGENT_CONTROL_PLANE_URL": "http://fleet.example:8000"}


def test_defaults_serve_port_3000_with_a_simulated_sensor():
    config = load_config(None, environ=CONTROL_PLANE)

    assert (config.server.port, config.sensor.driver, config.sensor.pins) == (
        3000,
        "simulated",
        (4,),
    )
    assert config.artifact_dir == Path("var/device-host/compiled")
    assert config.plugins.source == "signed"


def test_the_file_sets_values_and_the_environment_overrides_them(tmp_path):
    path = _write(tmp_path, "[server]\nport = 3100\n[sensor]\npins = [4, 17]\n")

    config = load_config(
        path,
        environ={
            **CONTROL_PLANE,
            "DEVICE_HOST_SERVER_PORT": "3200",
            "DEVICE_HOST_SENSOR_HANG": "1",
        },
    )

    assert config.server.port == 3200
    assert config.sensor.pins == (4, 17)
    assert config.sensor.hang is True


def test_a_list_of_pins_can_come_from_the_environment():
    environ = {**CONTROL_PLANE, "DEVICE_HOST_GPIO_PINS": "17,27"}

    assert load_config(None, environ=environ).gpio.pins == (17, 27)


def test_signed_plugins_need_a_control_plane_and_say_so():
    with pytest.raises(ConfigError, match=r"needs \[agent\] control_plane_url"):
        load_config(None, environ={})


def test_local_plugins_need_no_control_plane():
    config = load_config(None, environ={"DEVICE_HOST_PLUGINS_SOURCE": "local"})

    assert config.agent.control_plane_url == ""


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[server]\nport = 'x'\n", {}, "[server] port must be int, got 'x'"),
        ("[serve]\nport = 1\n", {}, "unknown config sections: ['serve']"),
        ("[server]\nprot = 1\n", {}, "unknown keys in [server]: ['prot']"),
        (
            "",
            {"DEVICE_HOST_SERVER_PORT": "http"},
            "DEVICE_HOST_SERVER_PORT='http' is not an integer",
        ),
        (
            "",
            {"DEVICE_HOST_SENSOR_HANG": "maybe"},
            "DEVICE_HOST_SENSOR_HANG='maybe' is not a boolean",
        ),
        ("[sensor]\ndriver = 'dht11'\n", {}, "[sensor] driver 'dht11'"),
        ("[server]\nport = 70000\n", {}, "is not a TCP port"),
    ],
)
def test_a_bad_setting_fails_at_start_up_naming_the_key(tmp_path, text, environ, message):
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, text), environ=environ)

    assert message in str(error.value)


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_file_loads(path, monkeypatch):
    for name in [k for k in os.environ if k.startswith("DEVICE_HOST_")]:
        monkeypatch.delenv(name)

    config = load_config(path)

    assert config.server.port > 0
