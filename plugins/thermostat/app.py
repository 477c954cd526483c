"""Runs a fan on GPIO 17 when it is warm, with hysteresis so the relay does not chatter.

The fan state and the number of switches live in kv, so a hot swap or a host restart
picks up where the last version left off.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import dht22, gpio, kv, log

SENSOR_PIN = 4
FAN_PIN = 17
FAN_ON_AT_C = 26.0
FAN_OFF_AT_C = 25.0
STATE_KEY = "state"


def fan_should_run(running: bool, temperature_c: float) -> bool:
    """Between the two thresholds the fan keeps doing what it was doing."""
    if temperature_c >= FAN_ON_AT_C:
        return True
    if temperature_c <= FAN_OFF_AT_C:
        return False
    return running


def wit_name(error: Err) -> str:
    """The error as the WIT spells it, e.g. ``not-granted``."""
    return error.value.name.lower().replace("_", "-")


class ControlLoop(exports.ControlLoop):
    def tick(self, now_ms: int) -> None:
        try:
            temperature_c = dht22.read(SENSOR_PIN).temperature_c
        except Err as err:
            raise Err(f"sensor read failed ({wit_name(err)}); fan left as it was") from None
        state = json.loads(kv.get(STATE_KEY) or '{"fan_on": false, "switches": 0}')
        fan_on = fan_should_run(state["fan_on"], temperature_c)
        try:
            # Driven every tick, not only on a switch: after a host restart the pin starts
            # low while kv may say the fan is on.
            gpio.set_output(FAN_PIN, fan_on)
        except Err as err:
            raise Err(f"cannot drive the fan on GPIO {FAN_PIN}: {wit_name(err)}") from None
        if fan_on != state["fan_on"]:
            state = {"fan_on": fan_on, "switches": state["switches"] + 1}
            log.write(
                log.Level.INFO,
                f"fan {'on' if fan_on else 'off'} at {temperature_c:.1f} °C"
                f" (switch #{state['switches']})",
            )
            try:
                kv.set(STATE_KEY, json.dumps(state))
            except Err as err:
                raise Err(f"fan switched, but its state was not saved: {wit_name(err)}") from None
