"""Names of the contract's interfaces and worlds, and which manifest grant unlocks which import."""

from __future__ import annotations

import re
from dataclasses import dataclass

from device_host.manifest import Manifest

FLEET_PACKAGE = "fleet:plugin@0.1.0"
DEMO_PACKAGE = "demo:plugin@0.1.0"


def _qualified(package: str, interface: str) -> str:
    namespace, version = package.split("@")
    return f"{namespace}/{interface}@{version}"


LOG = _qualified(FLEET_PACKAGE, "log")
DHT22 = _qualified(FLEET_PACKAGE, "dht22")
GPIO = _qualified(FLEET_PACKAGE, "gpio")
KV = _qualified(FLEET_PACKAGE, "kv")
HTTP_HANDLER = _qualified(FLEET_PACKAGE, "http-handler")
CONTROL_LOOP = _qualified(FLEET_PACKAGE, "control-loop")
SELF_CHECK = _qualified(FLEET_PACKAGE, "self-check")
DEMO_GPIO_PROVIDER = _qualified(DEMO_PACKAGE, "gpio-provider")
DEMO_SENSOR_LOGIC = _qualified(DEMO_PACKAGE, "sensor-logic")
DEMO_DASHBOARD_LOGIC = _qualified(DEMO_PACKAGE, "dashboard-logic")

ALL_IMPORTS = (LOG, DHT22, GPIO, KV, DEMO_GPIO_PROVIDER)
ALL_EXPORTS = (HTTP_HANDLER, CONTROL_LOOP, SELF_CHECK, DEMO_SENSOR_LOGIC, DEMO_DASHBOARD_LOGIC)
OPTIONAL_EXPORTS = frozenset({SELF_CHECK})
COMPONENTIZE_PY_INIT_EXPORT = "exports"
"""componentize-py's pre-initialisation hook; never called by the host, ignored by checks."""


@dataclass(frozen=True)
class WorldSpec:
    """One world of the contract: what every plugin of it exports and imports."""

    wit_name: str
    base_imports: frozenset[str]
    exports: frozenset[str]
    grantable: frozenset[str]


WORLD_SPECS: dict[str, WorldSpec] = {
    "dashboard": WorldSpec(
        wit_name=_qualified(FLEET_PACKAGE, "dashboard"),
        base_imports=frozenset({LOG}),
        exports=frozenset({HTTP_HANDLER}),
        grantable=frozenset({DHT22, GPIO, KV}),
    ),
    "automation": WorldSpec(
        wit_name=_qualified(FLEET_PACKAGE, "automation"),
        base_imports=frozenset({LOG}),
        exports=frozenset({CONTROL_LOOP}),
        grantable=frozenset({DHT22, GPIO, KV}),
    ),
    "demo:sensor-plugin": WorldSpec(
        wit_name=_qualified(DEMO_PACKAGE, "sensor-plugin"),
        base_imports=frozenset(),
        exports=frozenset({DEMO_SENSOR_LOGIC}),
        grantable=frozenset({DEMO_GPIO_PROVIDER}),
    ),
    "demo:dashboard-plugin": WorldSpec(
        wit_name=_qualified(DEMO_PACKAGE, "dashboard-plugin"),
        base_imports=frozenset(),
        exports=frozenset({DEMO_DASHBOARD_LOGIC}),
        grantable=frozenset(),
    ),
}


def granted_imports(manifest: Manifest) -> frozenset[str]:
    """The host interfaces this plugin may import: its world's base plus what it was granted."""
    spec = WORLD_SPECS[manifest.world]
    grants = set(spec.base_imports)
    caps = manifest.capabilities
    if caps.dht22_pins:
        grants.add(DEMO_GPIO_PROVIDER if manifest.world == "demo:sensor-plugin" else DHT22)
    if caps.gpio_out_pins:
        grants.add(GPIO)
    if caps.kv_quota_bytes:
        grants.add(KV)
    return frozenset(grants & (spec.base_imports | spec.grantable))


def capability_hint(interface: str) -> str:
    """What a manifest must grant for a plugin to import ``interface``."""
    hints = {
        compatibility_key(DHT22): "[capabilities] dht22 = [<pin>]",
        compatibility_key(DEMO_GPIO_PROVIDER): "[capabilities] dht22 = [<pin>]",
        compatibility_key(GPIO): "[capabilities] gpio-out = [<pin>]",
        compatibility_key(KV): "[capabilities] kv-quota-bytes = <bytes>",
    }
    return hints.get(compatibility_key(interface), "nothing: this host does not provide it")


_VERSIONED = re.compile(r"^(?P<name>[^@]+)@(?P<major>\d+)\.(?P<minor>\d+)\.\d+(?:-.*)?$")


def compatibility_key(name: str) -> str:
    """Collapses a versioned interface name to what semver lets the linker substitute.

    ``fleet:plugin/kv@0.1.3`` and ``fleet:plugin/kv@0.1.0`` share the key ``fleet:plugin/kv@0.1``,
    as wasmtime's linker treats them as compatible; ``@1.4.2`` becomes ``@1``.
    """
    match = _VERSIONED.match(name)
    if not match:
        return name
    major, minor = match["major"], match["minor"]
    return f"{match['name']}@{major}" if major != "0" else f"{match['name']}@0.{minor}"
