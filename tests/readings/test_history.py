"""ReadingHistory: plugin readings are namespaced, checked and bounded; the host's are its own."""

from __future__ import annotations

import contextlib
import math
import threading

import pytest

from device_host.hardware import Reading
from device_host.readings import (
    MAX_PLUGIN_SERIES,
    MAX_SERIES_PER_PLUGIN,
    ReadingHistory,
    ReadingRefused,
    RefusalReason,
)

NOW = 1_800_000_000.0


def _history_with_host_sample(temperature_c: float = 22.5) -> ReadingHistory:
    history = ReadingHistory()
    history.record_sensor(4, Reading(temperature_c, 40.0, NOW - 1))
    return history


def _refusal(history: ReadingHistory, **reading: object) -> RefusalReason:
    values: dict[str, object] = {
        "plugin": "spoofer",
        "sensor_id": "s1",
        "temperature_c": 21.0,
        "humidity_pct": 50.0,
        "taken_at": NOW,
        "now": NOW,
        **reading,
    }
    with pytest.raises(ReadingRefused) as refused:
        history.record_plugin(**values)  # type: ignore[arg-type]
    return refused.value.reason


def test_a_plugin_naming_its_sensor_dht22_does_not_write_into_the_hosts_series():
    history = _history_with_host_sample()

    history.record_plugin("spoofer", "dht22", 79.0, 1.0, NOW, NOW)

    assert history.to_json()["dht22:4"] == [
        {"source": "dht22:4", "temperature_c": 22.5, "humidity_pct": 40.0, "taken_at": NOW - 1}
    ]
    assert history.to_json()["spoofer/dht22"][0]["temperature_c"] == 79.0


def test_a_plugin_named_dht22_reporting_sensor_4_gets_its_own_series():
    history = _history_with_host_sample()

    history.record_plugin("dht22", "4", 30.0, 50.0, NOW, NOW)

    assert sorted(history.to_json()) == ["dht22/4", "dht22:4"]
    assert history.to_json()["dht22:4"][0]["temperature_c"] == 22.5


def test_a_future_timestamp_is_refused_and_the_host_keeps_recording_real_samples():
    history = _history_with_host_sample()

    reason = _refusal(history, sensor_id="dht22", temperature_c=79.0, taken_at=NOW + 3600)
    history.record_sensor(4, Reading(22.6, 40.0, NOW))

    assert reason is RefusalReason.FUTURE
    assert [r["temperature_c"] for r in history.to_json()["dht22:4"]] == [22.5, 22.6]


def test_a_small_clock_skew_is_accepted():
    history = ReadingHistory()

    history.record_plugin("sensor", "s1", 21.0, 50.0, NOW + 4, NOW)

    assert len(history.to_json()["sensor/s1"]) == 1


def test_a_timestamp_long_past_is_refused():
    assert _refusal(ReadingHistory(), taken_at=1.0) is RefusalReason.TOO_OLD


@pytest.mark.parametrize(
    ("temperature_c", "humidity_pct"),
    [(99.9, 50.0), (-40.1, 50.0), (20.0, 100.5), (20.0, -1.0), (math.nan, 50.0), (20.0, math.inf)],
)
def test_a_value_no_dht22_can_measure_is_refused(temperature_c, humidity_pct):
    reason = _refusal(ReadingHistory(), temperature_c=temperature_c, humidity_pct=humidity_pct)

    assert reason is RefusalReason.OUT_OF_RANGE


@pytest.mark.parametrize(
    "sensor_id", ["", "a" * 24, "line\nbreak", "../etc", "with space", "dht22:4", "-lead", "é"]
)
def test_a_malformed_sensor_id_is_refused(sensor_id):
    assert _refusal(ReadingHistory(), sensor_id=sensor_id) is RefusalReason.BAD_SENSOR_ID


def test_the_refusal_names_the_plugin_and_the_reason():
    history = ReadingHistory()

    with pytest.raises(ReadingRefused, match=r"plugin spoofer: reading of sensor 'x' refused: "):
        history.record_plugin("spoofer", "x", 20.0, 50.0, NOW + 60, NOW)


def test_a_refusal_keeps_a_hostile_sensor_id_on_one_line():
    with pytest.raises(ReadingRefused) as refused:
        ReadingHistory().record_plugin("spoofer", "x\nFORGED host line", 20.0, 50.0, NOW, NOW)

    assert "\n" not in str(refused.value)
    assert "'x\\nFORGED host line'" in str(refused.value)


def test_a_reading_not_newer_than_the_last_of_its_series_is_refused():
    history = ReadingHistory()
    history.record_plugin("sensor", "s1", 21.0, 50.0, NOW, NOW)

    assert _refusal(history, plugin="sensor", taken_at=NOW) is RefusalReason.NOT_NEWER


def test_a_plugin_reporting_a_new_sensor_id_per_poll_keeps_a_bounded_number_of_series():
    history = ReadingHistory()
    refused = 0

    for poll in range(1000):
        try:
            history.record_plugin("churn", f"s{poll}", 21.0, 50.0, NOW, NOW)
        except ReadingRefused as exc:
            assert exc.reason is RefusalReason.TOO_MANY_SERIES
            refused += 1

    assert len(history.to_json()) == MAX_SERIES_PER_PLUGIN
    assert refused == 1000 - MAX_SERIES_PER_PLUGIN


def test_plugin_series_are_bounded_across_plugins_too():
    history = _history_with_host_sample()
    for plugin in range(MAX_PLUGIN_SERIES // MAX_SERIES_PER_PLUGIN):
        for sensor in range(MAX_SERIES_PER_PLUGIN):
            history.record_plugin(f"p{plugin}", f"s{sensor}", 21.0, 50.0, NOW, NOW)

    assert _refusal(history, plugin="latecomer") is RefusalReason.TOO_MANY_SERIES
    history.record_sensor(5, Reading(20.0, 40.0, NOW))
    assert len(history.to_json()) == MAX_PLUGIN_SERIES + 2


def test_each_series_keeps_only_its_newest_points():
    history = ReadingHistory(points_per_series=10)

    for i in range(50):
        history.record_plugin("sensor", "s1", 21.0, 50.0, NOW - 50 + i, NOW)
        history.record_sensor(4, Reading(22.0, 40.0, NOW - 50 + i))

    for series in history.to_json().values():
        assert [r["taken_at"] for r in series] == [NOW - 10 + i for i in range(10)]


def test_dropping_a_plugin_forgets_its_series_and_frees_room_for_others():
    history = _history_with_host_sample()
    for plugin in range(MAX_PLUGIN_SERIES // MAX_SERIES_PER_PLUGIN):
        for sensor in range(MAX_SERIES_PER_PLUGIN):
            history.record_plugin(f"p{plugin}", f"s{sensor}", 21.0, 50.0, NOW, NOW)

    history.drop_plugin("p0")
    history.record_plugin("newcomer", "s1", 21.0, 50.0, NOW, NOW)

    assert not any(name.startswith("p0/") for name in history.to_json())
    assert "newcomer/s1" in history.to_json()
    assert "dht22:4" in history.to_json()


def test_the_demo_reading_is_the_sensor_plugins_fresh_reading_first():
    history = _history_with_host_sample(22.5)
    history.record_plugin("greenhouse", "bed-1", 31.25, 70.0, NOW - 2, NOW)

    reading = history.demo_reading(max_age_s=5, now=NOW)

    assert reading is not None
    assert (reading.source, reading.sensor_id, reading.temperature_c) == (
        "greenhouse/bed-1",
        "bed-1",
        31.25,
    )


def test_the_demo_reading_falls_back_to_the_hosts_sensor_when_the_plugins_is_stale():
    history = _history_with_host_sample(22.5)
    history.record_plugin("greenhouse", "bed-1", 31.25, 70.0, NOW - 60, NOW)

    reading = history.demo_reading(max_age_s=5, now=NOW)

    assert reading is not None and reading.source == "dht22:4"


def test_the_demo_reading_falls_back_to_the_hosts_sensor_after_the_plugin_is_dropped():
    history = _history_with_host_sample(22.5)
    history.record_plugin("greenhouse", "bed-1", 31.25, 70.0, NOW - 1, NOW)

    history.drop_plugin("greenhouse")

    reading = history.demo_reading(max_age_s=5, now=NOW)
    assert reading is not None and reading.source == "dht22:4"


def test_there_is_no_demo_reading_when_everything_is_stale():
    history = _history_with_host_sample()

    assert history.demo_reading(max_age_s=5, now=NOW + 60) is None


def test_latest_lists_plugin_series_by_plugin_name_then_the_hosts_by_pin():
    history = ReadingHistory()
    history.record_sensor(17, Reading(20.0, 40.0, NOW))
    history.record_sensor(4, Reading(21.0, 40.0, NOW))
    history.record_plugin("zeta", "a", 22.0, 50.0, NOW, NOW)
    history.record_plugin("alpha", "b", 23.0, 50.0, NOW, NOW)

    assert [r.source for r in history.latest()] == ["alpha/b", "zeta/a", "dht22:4", "dht22:17"]


def test_history_since_returns_only_newer_points_oldest_first():
    history = ReadingHistory()
    for i in range(5):
        history.record_sensor(4, Reading(20.0 + i, 40.0, NOW + i))

    assert [r["temperature_c"] for r in history.to_json(since=NOW + 2)["dht22:4"]] == [23.0, 24.0]


def test_plugin_values_are_rounded_to_hundredths_as_f32_noise_is_not_precision():
    history = ReadingHistory()

    history.record_plugin("sensor", "s1", 22.299999237060547, 45.099998474121094, NOW, NOW)

    assert history.latest()[0].temperature_c == 22.3
    assert history.latest()[0].humidity_pct == 45.1


def test_concurrent_writers_and_readers_never_exceed_the_bounds():
    history = _history_with_host_sample()
    errors: list[BaseException] = []

    def churn(plugin: str) -> None:
        try:
            for i in range(2000):
                with contextlib.suppress(ReadingRefused):
                    history.record_plugin(plugin, f"s{i % 50}", 21.0, 50.0, NOW + i / 1000, NOW)
                history.latest()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(f"p{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(history.to_json()) == MAX_PLUGIN_SERIES + 1
