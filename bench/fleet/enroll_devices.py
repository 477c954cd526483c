"""Enrolls N devices through the control plane's own services and writes their tokens.

``python bench/fleet/enroll_devices.py <count> <tokens file> [<sequences file>]``, with the
control plane's ``CONTROL_PLANE_*`` environment. Each enrollment spends one use of a single
token and signs the device's first desired state, exactly as ``POST /api/v1/enroll`` does.
The sequences file gets each device's desired-state sequence, line by line with the tokens,
for heartbeats that report it (conditional answers).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.settings")


def main() -> None:
    import django

    django.setup()
    from control_plane.devices.services import create_enrollment_token, enroll_device

    count, tokens_path = int(sys.argv[1]), Path(sys.argv[2])
    started = time.monotonic()
    _, secret = create_enrollment_token(label="bench", uses=count)
    enrolled = [
        enroll_device(enrollment_token=secret, name=f"bench-pi-{i:05d}", host_version="0.1.0")
        for i in range(count)
    ]
    tokens_path.write_text("".join(f"{token}\n" for _, token in enrolled))
    if len(sys.argv) > 3:
        from control_plane.devices.models import Device

        # Read back: enrollment's receivers sign the desired state on their own instance.
        current = dict(Device.objects.values_list("pk", "desired_sequence"))
        sequences = [current[device.pk] for device, _ in enrolled]
        Path(sys.argv[3]).write_text("".join(f"{n}\n" for n in sequences))
    print(f"enrolled {count} devices in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
