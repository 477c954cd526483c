"""What a plugin can reach: its grants through host functions, and nothing else."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from tests.support import HostProcess, http_get, place_plugin, wait_until


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:
    host = HostProcess(workdir=tmp_path_factory.mktemp("sandbox"), compiled_dir=compiled_dir)
    place_plugin(build("lab"), host.plugins_dir)
    host.start()
    yield host
    assert host.stop() == 0, host.log()


def _lab(host: HostProcess, path: str) -> tuple[int, str]:
    return http_get(f"{host.url}/plugins/lab/{path}")


def test_a_granted_sensor_pin_returns_a_fresh_reading(host):
    status, body = _lab(host, "sensor/4")
    temperature, humidity, age_ms = body.split()

    assert status == 200
    assert 5.0 < float(temperature) < 40.0
    assert 0.0 <= float(humidity) <= 100.0
    assert int(age_ms) < 5000


def test_a_binary_body_arrives_byte_for_byte(host):
    with urllib.request.urlopen(f"{host.url}/plugins/lab/binary", timeout=10) as response:
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.read() == bytes(range(256))


def test_a_sensor_pin_not_granted_answers_not_granted(host):
    assert _lab(host, "sensor/5") == (409, "error not-granted")


def test_a_granted_output_pin_can_be_driven(host):
    assert _lab(host, "gpio/17/on") == (200, "on")
    assert _lab(host, "gpio/17/off") == (200, "off")


def test_an_output_pin_not_granted_answers_not_granted(host):
    assert _lab(host, "gpio/18/on") == (409, "error not-granted")


def test_the_key_value_store_enforces_its_quota(host):
    assert _lab(host, "kv/put/small/20") == (200, "stored")
    assert _lab(host, "kv/put/huge/100") == (409, "error quota-exceeded")
    assert _lab(host, "kv/get/small") == (200, "20")
    assert _lab(host, "kv/get/huge") == (200, "missing")


def test_the_plugin_sees_no_files_environment_arguments_or_sockets(host):
    status, body = _lab(host, "snoop")

    assert status == 200
    assert body == (
        "env=0 argv=0 read=FileNotFoundError list=FileNotFoundError "
        "write=FileNotFoundError socket=missing"
    )


def test_guest_output_goes_to_the_host_log_tagged_with_the_plugin(host):
    _lab(host, "print")

    def logged() -> bool:
        log = host.log()
        return "lab says hello on stdout" in log and "lab says hello on stderr" in log

    wait_until(logged, 10, "the guest's output logged")
    log = host.log()
    assert "plugin.lab: [stdout] lab says hello on stdout" in log
    assert "plugin.lab: [stderr] lab says hello on stderr" in log


def test_the_log_interface_reaches_the_host_log(host):
    _lab(host, "greet")

    assert "plugin.lab: lab served /greet" in host.log()
