#!/usr/bin/env python
"""Django's command-line utility for the control plane: ``python control_plane/manage.py``."""

import os
import sys
from pathlib import Path


def main() -> None:
    # Run as a script, Python puts this folder first on the path; the package lives one up.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
