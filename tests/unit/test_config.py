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


CONTROL_PLANE = {"DEVICE_HOST_AGENT_CONTROL_PLANE_URL": "http://127.0.0.1:8000"}


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


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.8.9.10", "http://[::1]:8000", "http://localhost"]
)
def test_plain_http_to_a_loopback_address_is_accepted(url):
    environ = {"DEVICE_HOST_AGENT_CONTROL_PLANE_URL": url}

    assert load_config(None, environ=environ).agent.control_plane_url == url


@pytest.mark.parametrize(
    "url", ["http://fleet.example:8000", "http://10.0.0.1", "http://127.0.0.1.evil.example"]
)
def test_plain_http_off_the_machine_is_refused_naming_the_problem(url):
    with pytest.raises(ConfigError, match=r"is plain HTTP to .*not a loopback address"):
        load_config(None, environ={"DEVICE_HOST_AGENT_CONTROL_PLANE_URL": url})


def test_https_without_the_fleet_ca_is_refused():
    environ = {"DEVICE_HOST_AGENT_CONTROL_PLANE_URL": "https://fleet.example"}

    with pytest.raises(ConfigError, match=r"is HTTPS but \[agent\] ca_file is not set"):
        load_config(None, environ=environ)


def test_https_with_the_fleet_ca_is_accepted():
    environ = {
        "DEVICE_HOST_AGENT_CONTROL_PLANE_URL": "https://fleet.example",
        "DEVICE_HOST_AGENT_CA_FILE": "/etc/device-host/fleet-ca.pem",
    }

    assert load_config(None, environ=environ).agent.ca_file == Path("/etc/device-host/fleet-ca.pem")


def test_a_legacy_agent_url_is_ignored_so_an_upgraded_host_still_starts(tmp_path, caplog):
    path = _write(tmp_path, '[agent]\nagent_url = "http://pi-1:3000"\n')

    config = load_config(path, environ=CONTROL_PLANE)

    assert not hasattr(config.agent, "agent_url")
    assert "[agent] agent_url is no longer used" in caplog.text


def test_a_control_plane_url_without_a_host_is_refused():
    with pytest.raises(ConfigError, match="has no host"):
        load_config(None, environ={"DEVICE_HOST_AGENT_CONTROL_PLANE_URL": "http://"})


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_file_loads(path, monkeypatch):
    for name in [k for k in os.environ if k.startswith("DEVICE_HOST_")]:
        monkeypatch.delenv(name)

    config = load_config(path)

    assert config.server.port > 0
