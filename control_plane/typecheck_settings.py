"""The settings mypy's Django plugin loads: the real ones, importable without a deployment.

The plugin imports the settings module to learn the installed apps and models. The real
settings refuse to load without a secret key, so a bare ``python -m mypy`` would crash; a
placeholder key is enough here, because nothing is served or signed while type-checking.
"""

from __future__ import annotations

import os

os.environ.setdefault("CONTROL_PLANE_SECRET_KEY", "type-checking-only-never-served")

from control_plane.settings import *  # noqa: F403
