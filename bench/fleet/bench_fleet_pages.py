"""The fleet pages at 10,000 devices: time and bytes per page and per JSON poll.

Seeds a fresh database (SQLite in ``bench/results/fleet/work/fleet-pages/``, or PostgreSQL
with ``--database postgresql`` under ``scripts/with-postgres.sh``) with ``--devices``
devices made by ``bulk_create``: each reports two plugins, has a desired state naming
them (a tenth drift, a fiftieth fail, a twentieth are offline, some in maintenance), a
signed-envelope-sized desired state, a tag, and a revert event for a fiftieth of them.
Then, in the same process, Django's test client asks each page ``--runs`` times as a
signed-in admin (server time: URL routing, queries, templates; no network) and records
the median and the bytes. **before** is the overview as it was before issue 10, measured
in the same run on the same rows: every device's summary in one response, rendered with
the template of the last commit that had the unpaginated page (`OLD_TEMPLATE_COMMIT`).

    .venv/bin/python bench/fleet/bench_fleet_pages.py [--devices 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

from common import REPO, WORK, Table, exit_on_sigterm, machine, machine_line, write_results

OLD_TEMPLATE_COMMIT = "5915eaf"
"""The last commit whose ``/fleet/`` rendered every device on one page."""
OLD_TEMPLATE = "control_plane/devices/templates/devices/fleet.html"


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    state = WORK / "fleet-pages"
    (state / "static").mkdir(parents=True, exist_ok=True)
    database = state / "control-plane.sqlite3"
    database.unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    if args.database == "postgresql":
        url = os.environ.get("CONTROL_PLANE_TEST_DATABASE_URL", "")
        if not url:
            raise SystemExit("bench: run under scripts/with-postgres.sh for PostgreSQL")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "control_plane.settings",
            "CONTROL_PLANE_SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
            "CONTROL_PLANE_DEBUG": "0",
            "CONTROL_PLANE_ALLOWED_HOSTS": "testserver",
            "CONTROL_PLANE_DATABASE_URL": url,
            "CONTROL_PLANE_STATIC_ROOT": str(state / "static"),
            "CONTROL_PLANE_LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    started = time.monotonic()
    seeded = seed(args.devices)
    seed_s = time.monotonic() - started
    print(f"seeded {args.devices} devices in {seed_s:.1f} s")
    rows = measure(args.runs, seeded)
    data = {
        "machine": machine(),
        "database": args.database,
        "devices": args.devices,
        "runs": args.runs,
        "seed_s": round(seed_s, 1),
        "pages": rows,
    }
    write_results(f"fleet-pages-{args.database}", data, markdown(data))


def seed(count: int) -> dict[str, Any]:
    """The fleet's rows, made in bulk as heartbeats and rollouts would have left them."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from control_plane.devices.models import Device, DeviceEvent, Tag

    now = timezone.now()
    tags = [Tag.objects.create(name=name) for name in ("kitchen", "greenhouse", "garage")]
    devices = []
    for n in range(count):
        drifting, failing = n % 10 == 3, n % 50 == 7
        running = "1.0.0" if drifting else "1.1.0"
        offline = n % 20 == 11
        devices.append(
            Device(
                name=f"pi-{n:05d}",
                token_hash=f"{n:064x}",
                host_version="0.4.0",
                last_seen=now - (timedelta(hours=3) if offline else timedelta(seconds=n % 15)),
                maintenance="host upgrade" if offline and n % 3 == 0 else "",
                reported_plugins=[
                    {
                        "name": "hello",
                        "version": running,
                        "sha256": "ab" * 32,
                        "state": "quarantined" if failing else "running",
                        "trap_count": 3 if failing else 0,
                        "last_error": "timeout after 250 ms" if failing else None,
                    },
                    {
                        "name": "dashboard",
                        "version": "2.0.0",
                        "sha256": "cd" * 32,
                        "state": "running",
                        "trap_count": 0,
                        "last_error": None,
                    },
                ],
                desired_versions={"hello": "1.1.0", "dashboard": "2.0.0"},
                drifting=drifting,
                failing=failing,
                desired_sequence=3,
                desired_envelope="e" * 3500,
                last_reading={
                    "source": "dht22:4",
                    "temperature_c": 20.5,
                    "humidity_pct": 45.0,
                    "taken_at": now.isoformat(),
                },
                vitals={"ip": f"10.0.{n // 250}.{n % 250}", "os": "Raspberry Pi OS 12"},
            )
        )
    Device.objects.bulk_create(devices, batch_size=1000)
    through = Device.tags.through
    through.objects.bulk_create(
        [through(device_id=d.pk, tag_id=tags[i % 3].pk) for i, d in enumerate(devices)],
        batch_size=2000,
    )
    DeviceEvent.objects.bulk_create(
        [
            DeviceEvent(
                device=d,
                at=now - timedelta(minutes=5),
                plugin="hello",
                version="1.2.0",
                kind="reverted",
                detail="1.2.0 kept trapping in probation",
            )
            for i, d in enumerate(devices)
            if i % 50 == 1
        ],
        batch_size=1000,
    )
    admin = User.objects.create_superuser("bench", password="bench-password")
    return {"admin": admin}


def measure(runs: int, seeded: dict[str, Any]) -> list[dict[str, object]]:
    """Each page ``runs`` times; the since-poll asks for what changed in the last 5 s."""
    from django.test import Client
    from django.utils import timezone

    client = Client()
    client.force_login(seeded["admin"])
    pages: list[tuple[str, Callable[[], bytes]]] = [
        ("before: /fleet/ (every device)", old_page),
        ("before: devices.json (every device)", old_json),
    ]
    for label, url in (
        ("/fleet/", "/fleet/"),
        ("/fleet/?page=150", "/fleet/?page=150"),
        ("/fleet/?sort=-last_seen", "/fleet/?sort=-last_seen"),
        ("/fleet/?state=drifting", "/fleet/?state=drifting"),
        ("/fleet/?q=pi-0123", "/fleet/?q=pi-0123"),
        ("/fleet/?plugin=hello&version=1.0.0", "/fleet/?plugin=hello&version=1.0.0"),
        ("/fleet/devices.json", "/fleet/devices.json"),
        ("/fleet/versions/hello/1.2.0/", "/fleet/versions/hello/1.2.0/"),
    ):
        pages.append((label, partial(_get, client, url)))
    pages.append(("/fleet/devices.json?since=(5 s ago)", partial(_since_poll, client)))
    rows = []
    for label, fetch in pages:
        if "since" in label:
            heartbeating(timezone.now())
        times, size = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            size = len(fetch())
            times.append(time.perf_counter() - started)
        rows.append(
            {
                "page": label,
                "median_ms": round(statistics.median(times) * 1000, 1),
                "max_ms": round(max(times) * 1000, 1),
                "bytes": size,
            }
        )
        print(f"{label}: {rows[-1]['median_ms']} ms, {size} bytes")
    return rows


def heartbeating(now: Any) -> None:
    """Online devices as if each heartbeated within the last 10 s (the default interval):
    about half of them changed in any 5 s, as a live fleet's poll sees."""
    from control_plane.devices.models import Device

    online = list(Device.objects.filter(maintenance="", last_seen__gte=now - timedelta(hours=1)))
    for n, device in enumerate(online):
        device.last_seen = now - timedelta(seconds=n % 10, milliseconds=n % 7 * 100)
    Device.objects.bulk_update(online, ["last_seen"], batch_size=1000)


def _since_poll(client: Any) -> bytes:
    """The refresh script's poll: the first page's devices that changed in the last 5 s."""
    from django.utils import timezone

    since = quote((timezone.now() - timedelta(seconds=5)).isoformat())
    return _get(client, f"/fleet/devices.json?since={since}")


def _get(client: Any, url: str) -> bytes:
    answer = client.get(url)
    if answer.status_code != 200:
        raise SystemExit(f"bench: {url} answered {answer.status_code}")
    content: bytes = answer.content
    return content


def old_summary(device: Any, now: Any) -> dict[str, Any]:
    """A device as the overview summarised it before issue 10 (every column loaded)."""
    return {
        "id": str(device.pk),
        "name": device.name,
        "connectivity": device.connectivity(now).value,
        "host_version": device.host_version,
        "maintenance": device.maintenance,
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        "tags": [tag.name for tag in device.tags.all()],
        "plugins": [
            {key: plugin.get(key) for key in ("name", "version", "state")}
            for plugin in device.reported_plugins
        ],
        "last_reading": device.last_reading,
    }


def _old_devices() -> list[dict[str, Any]]:
    from django.utils import timezone

    from control_plane.devices.models import Device

    now = timezone.now()
    everyone = Device.objects.prefetch_related("tags").order_by("name", "pk")
    return [old_summary(d, now) for d in everyone]


def old_json() -> bytes:
    from django.http import JsonResponse

    return JsonResponse({"devices": _old_devices()}).content


def old_page() -> bytes:
    from django.contrib.auth.models import AnonymousUser
    from django.template import engines
    from django.test import RequestFactory

    from control_plane.devices.choices import Connectivity
    from control_plane.devices.models import Tag

    text = subprocess.run(
        ["git", "show", f"{OLD_TEMPLATE_COMMIT}:{OLD_TEMPLATE}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    template = engines["django"].from_string(text)
    request = RequestFactory().get("/fleet/")
    request.user = AnonymousUser()
    devices = _old_devices()
    context = {
        "devices": devices,
        "tags": Tag.objects.all(),
        "states": Connectivity.choices,
        "online_count": sum(d["connectivity"] == "online" for d in devices),
        "refresh_ms": 5000,
    }
    return template.render(context, request).encode()


def markdown(data: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = data["pages"]
    before_page, before_json = rows[0], rows[1]
    table = Table(["page", "median ms", "max ms", "bytes", "vs before"], [])
    for row in rows:
        before = before_json if "json" in row["page"] else before_page
        ratio = (
            ""
            if row["page"].startswith("before")
            else (
                f"{before['median_ms'] / max(row['median_ms'], 0.1):.0f}x faster, "
                f"{before['bytes'] / max(row['bytes'], 1):.0f}x smaller"
            )
        )
        table.rows.append(
            [
                row["page"],
                f"{row['median_ms']:.1f}",
                f"{row['max_ms']:.1f}",
                f"{row['bytes']:,}",
                ratio,
            ]
        )
    return "\n".join(
        [
            f"## Fleet pages at {data['devices']:,} devices ({data['database']})",
            "",
            machine_line(data["machine"]),
            "",
            f"Django's test client in one process, signed in, {data['runs']} runs each (server "
            "time, no network); **before** renders the unpaginated overview of the previous "
            "commit over the same rows. Target: < 200 ms and < 200 KB per page.",
            "",
            table.markdown(),
        ]
    )


if __name__ == "__main__":
    main()
