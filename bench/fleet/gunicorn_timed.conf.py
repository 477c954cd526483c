"""control_plane/gunicorn_settings.py plus an access log the delivery benchmark can time.

Each access line starts with the Unix time in milliseconds at which the answer was sent
(gunicorn's own ``%(t)s`` has whole seconds), then the request duration in µs, so a
download's start and end are both known. The bearer token tells which device asked.
"""

import runpy
import time
from pathlib import Path

from gunicorn.glogging import Logger

globals().update(
    {
        name: value
        for name, value in runpy.run_path(
            str(Path(__file__).resolve().parents[2] / "control_plane" / "gunicorn_settings.py")
        ).items()
        if not name.startswith("__")
    }
)


class MillisecondLogger(Logger):
    def now(self) -> str:
        return f"{time.time():.3f}"


logger_class = MillisecondLogger
access_log_format = (
    '%(t)s %(D)s "%(m)s %(U)s" %(s)s %(B)s in=%({content-length}i)s auth=%({authorization}i)s'
)
