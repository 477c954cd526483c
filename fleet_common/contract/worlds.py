"""The registry of worlds: what each exports, imports, may be granted, and how the host drives it.

Every place that needs to know about a world (the build, the load-time check, the runtime's
typed calls, the scheduler, the HTTP routes) reads it here, so adding a world is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from fleet_common.contract.interfaces import (
    CONTROL_LOOP,
    DEMO_DASHBOARD_LOGIC,
    DEMO_GPIO_PROVIDER,
    DEMO_PACKAGE,
    DEMO_SENSOR_LOGIC,
    DHT22,
    FLEET_PACKAGE,
    GPIO,
    HTTP_HANDLER,
    KV,
    LOG,
    qualified,
)

if TYPE_CHECKING:
    from fleet_common.manifest import Manifest


class Drive(StrEnum):
    """How the host calls a world's plugins."""

    HTTP = "http"
    """Each request to the plugin's pages calls ``http-handler.handle``."""
    RENDER = "render"
    """Each page request calls the original demo's ``render(temperature, humidity)``."""
    TICK = "tick"
    """The scheduler calls ``control-loop.tick`` every ``tick-interval-s``."""
    POLL = "poll"
    """The scheduler polls the original demo's ``sensor-logic.poll`` and records readings."""


@dataclass(frozen=True)
class World:
    """One world of the contract."""

    name: str
    """What a manifest's ``world`` says."""
    wit_name: str
    entry: str
    """The interface the host calls; the world's one required export."""
    drive: Drive
    base_imports: frozenset[str]
    grantable: frozenset[str]
    sensor_import: str | None = None
    """The interface a ``dht22`` grant links for this world."""
    fixed_period_s: float | None = None
    """For periodic worlds whose manifest has no interval: the original demo polled every 3 s."""
    page_apis: tuple[str, ...] = ()
    """Host paths this world's pages may fetch besides their own (their CSP grants)."""

    @property
    def exports(self) -> frozenset[str]:
        return frozenset({self.entry})

    @property
    def serves_pages(self) -> bool:
        return self.drive in (Drive.HTTP, Drive.RENDER)

    @property
    def periodic(self) -> bool:
        return self.drive in (Drive.TICK, Drive.POLL)


WORLDS: dict[str, World] = {
    world.name: world
    for world in (
        World(
            name="dashboard",
            wit_name=qualified(FLEET_PACKAGE, "dashboard"),
            entry=HTTP_HANDLER,
            drive=Drive.HTTP,
            base_imports=frozenset({LOG}),
            grantable=frozenset({DHT22, GPIO, KV}),
            sensor_import=DHT22,
        ),
        World(
            name="automation",
            wit_name=qualified(FLEET_PACKAGE, "automation"),
            entry=CONTROL_LOOP,
            drive=Drive.TICK,
            base_imports=frozenset({LOG}),
            grantable=frozenset({DHT22, GPIO, KV}),
            sensor_import=DHT22,
        ),
        World(
            name="demo:sensor-plugin",
            wit_name=qualified(DEMO_PACKAGE, "sensor-plugin"),
            entry=DEMO_SENSOR_LOGIC,
            drive=Drive.POLL,
            base_imports=frozenset(),
            grantable=frozenset({DEMO_GPIO_PROVIDER}),
            sensor_import=DEMO_GPIO_PROVIDER,
            fixed_period_s=3.0,
        ),
        World(
            name="demo:dashboard-plugin",
            wit_name=qualified(DEMO_PACKAGE, "dashboard-plugin"),
            entry=DEMO_DASHBOARD_LOGIC,
            drive=Drive.RENDER,
            base_imports=frozenset(),
            grantable=frozenset(),
            page_apis=("/api",),
        ),
    )
}


def granted_imports(manifest: Manifest) -> frozenset[str]:
    """The host interfaces this plugin may import: its world's base plus what it was granted."""
    world = WORLDS[manifest.world]
    grants = set(world.base_imports)
    caps = manifest.capabilities
    if caps.dht22_pins and world.sensor_import is not None:
        grants.add(world.sensor_import)
    if caps.gpio_out_pins:
        grants.add(GPIO)
    if caps.kv_quota_bytes:
        grants.add(KV)
    return frozenset(grants & (world.base_imports | world.grantable))
