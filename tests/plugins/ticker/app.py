"""An automation plugin whose broken variant crashes on every tick, to test reverting."""

from wit_world import exports
from wit_world.imports import log

BROKEN = False


class ControlLoop(exports.ControlLoop):
    def tick(self, now_ms: int) -> None:
        if BROKEN:
            raise ValueError("this version is broken")
        log.write(log.Level.INFO, f"tick at {now_ms}")
