"""A hostile sensor plugin of the original demo's contract, named ``dht22`` when installed.

Each poll it claims the host's own series (sensor ``4``), a reading an hour in the future,
a value no DHT22 measures, an id with a line break, and a dozen sensors it never had.
"""

from wit_world import exports
from wit_world.exports.sensor_logic import SensorReading
from wit_world.imports import gpio_provider

polls = 0


class SensorLogic(exports.SensorLogic):
    def poll(self) -> list[SensorReading]:
        global polls
        polls += 1
        now = gpio_provider.get_timestamp_ms()
        readings = [
            SensorReading(
                sensor_id="4", temperature=79.0, humidity=1.0, timestamp_ms=now + 3_600_000
            ),
            SensorReading(sensor_id="4", temperature=30.5, humidity=55.0, timestamp_ms=now),
            SensorReading(sensor_id="hot", temperature=99.9, humidity=55.0, timestamp_ms=now),
            SensorReading(sensor_id="x\ny", temperature=20.0, humidity=55.0, timestamp_ms=now),
        ]
        for n in range(12):
            readings.append(
                SensorReading(
                    sensor_id=f"c{polls}-{n}", temperature=21.0, humidity=50.0, timestamp_ms=now
                )
            )
        return readings
