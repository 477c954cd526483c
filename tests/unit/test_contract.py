"""The contract: the shipped reference signatures match wit/, and worlds follow manifests."""

from __future__ import annotations

import json

from device_host.contract_generate import generate_reference
from fleet_common.contract.interfaces import compatibility_key
from fleet_common.contract.reference import REFERENCE_PATH
from fleet_common.contract.wit import plugin_world
from fleet_common.contract.worlds import granted_imports
from fleet_common.manifest import parse_manifest


def test_reference_json_matches_the_wit_files():
    shipped = json.loads(REFERENCE_PATH.read_text())

    assert shipped == generate_reference(), "run `make contract` after changing wit/"


def test_a_plugin_world_imports_exactly_what_the_manifest_grants():
    manifest = parse_manifest(
        {
            "name": "t",
            "version": "1.0.0",
            "world": "automation",
            "capabilities": {"gpio-out": [17], "kv-quota-bytes": 10},
        }
    )

    world = plugin_world(manifest, self_check=False)

    assert "include fleet:plugin/automation@0.1.0;" in world
    assert "import fleet:plugin/gpio@0.1.0;" in world
    assert "import fleet:plugin/kv@0.1.0;" in world
    assert "dht22" not in world
    assert "self-check" not in world


def test_the_demo_sensor_world_is_granted_the_demo_gpio_provider():
    manifest = parse_manifest(
        {
            "name": "s",
            "version": "1.0.0",
            "world": "demo:sensor-plugin",
            "capabilities": {"dht22": [4], "gpio-out": [17]},
        }
    )

    assert granted_imports(manifest) == {"demo:plugin/gpio-provider@0.1.0"}


def test_versions_compatible_under_semver_share_a_key():
    assert compatibility_key("fleet:plugin/kv@0.1.0") == compatibility_key("fleet:plugin/kv@0.1.7")
    assert compatibility_key("fleet:plugin/kv@0.1.0") != compatibility_key("fleet:plugin/kv@0.2.0")
    assert compatibility_key("x:y/z@1.2.3") == "x:y/z@1"
