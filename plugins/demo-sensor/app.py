"""A sensor plugin for the original demo's contract, written the way the seed's were.

The host polls it every few seconds and records what it returns as readings.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.sensor_logic import SensorReading
from wit_world.imports import gpio_provider


class SensorLogic(exports.SensorLogic):
    def poll(self) -> list[SensorReading]:
        try:
            temperature, humidity = gpio_provider.read_dht22(4)
        except Err as err:
            print(f"DHT22 read failed: {err.value}")
            return []
        return [
            SensorReading(
                sensor_id="dht22-gpio4",
                temperature=temperature,
                humidity=humidity,
                timestamp_ms=gpio_provider.get_timestamp_ms(),
            )
        ]
