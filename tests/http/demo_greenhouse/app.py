"""A sensor plugin as the original demo's were written, reporting a greenhouse at 33.4 °C."""

from wit_world import exports
from wit_world.exports.sensor_logic import SensorReading
from wit_world.imports import gpio_provider


class SensorLogic(exports.SensorLogic):
    def poll(self) -> list[SensorReading]:
        return [
            SensorReading(
                sensor_id="greenhouse-1",
                temperature=33.4,
                humidity=61.0,
                timestamp_ms=gpio_provider.get_timestamp_ms(),
            )
        ]
