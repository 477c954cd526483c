"""Names of the contract's interfaces, what a manifest must grant for each, and semver keys."""

from __future__ import annotations

import re

FLEET_PACKAGE = "fleet:plugin@0.1.0"
DEMO_PACKAGE = "demo:plugin@0.1.0"


def qualified(package: str, interface: str) -> str:
    namespace, version = package.split("@")
    return f"{namespace}/{interface}@{version}"


LOG = qualified(FLEET_PACKAGE, "log")
DHT22 = qualified(FLEET_PACKAGE, "dht22")
GPIO = qualified(FLEET_PACKAGE, "gpio")
KV = qualified(FLEET_PACKAGE, "kv")
HTTP_HANDLER = qualified(FLEET_PACKAGE, "http-handler")
CONTROL_LOOP = qualified(FLEET_PACKAGE, "control-loop")
SELF_CHECK = qualified(FLEET_PACKAGE, "self-check")
DEMO_GPIO_PROVIDER = qualified(DEMO_PACKAGE, "gpio-provider")
DEMO_SENSOR_LOGIC = qualified(DEMO_PACKAGE, "sensor-logic")
DEMO_DASHBOARD_LOGIC = qualified(DEMO_PACKAGE, "dashboard-logic")

ALL_IMPORTS = (LOG, DHT22, GPIO, KV, DEMO_GPIO_PROVIDER)
ALL_EXPORTS = (HTTP_HANDLER, CONTROL_LOOP, SELF_CHECK, DEMO_SENSOR_LOGIC, DEMO_DASHBOARD_LOGIC)
OPTIONAL_EXPORTS = frozenset({SELF_CHECK})
COMPONENTIZE_PY_INIT_EXPORT = "exports"
"""componentize-py's pre-initialisation hook; never called by the host, ignored by checks."""


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
