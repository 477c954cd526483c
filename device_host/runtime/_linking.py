"""Builds the Linker for one plugin version: locked-down WASI plus exactly what it was granted."""

from __future__ import annotations

import wasmtime
from wasmtime.component import Linker

from device_host.runtime import _host_functions as host
from device_host.runtime._guest_log import GuestLog
from device_host.runtime._wasi import add_locked_down_wasi
from device_host.storage.kv import KvStores
from fleet_common.contract import interfaces as iface
from fleet_common.contract.worlds import granted_imports
from fleet_common.manifest import Manifest


def build_linker(
    engine: wasmtime.Engine,
    manifest: Manifest,
    services: host.HostServices,
    guest_log: GuestLog,
    kv_stores: KvStores,
) -> Linker:
    """Links only the interfaces ``manifest`` grants; anything else fails at instantiation."""
    linker = Linker(engine)
    add_locked_down_wasi(linker)
    caps = manifest.capabilities
    granted = granted_imports(manifest)
    with linker.root() as root:
        if iface.LOG in granted:
            with root.add_instance(iface.LOG) as instance:
                host.add_log(instance, guest_log)
        if iface.DHT22 in granted:
            with root.add_instance(iface.DHT22) as instance:
                host.add_dht22(instance, caps.dht22_pins, services)
        if iface.GPIO in granted:
            with root.add_instance(iface.GPIO) as instance:
                host.add_gpio(instance, caps.gpio_out_pins, services)
        if iface.KV in granted:
            with root.add_instance(iface.KV) as instance:
                store = kv_stores.for_plugin(
                    manifest.name, caps.kv_quota_bytes, manifest.limits.kv_write_bytes_per_min
                )
                host.add_kv(instance, store)
        if iface.DEMO_GPIO_PROVIDER in granted:
            with root.add_instance(iface.DEMO_GPIO_PROVIDER) as instance:
                host.add_demo_gpio_provider(instance, caps.dht22_pins, services)
    return linker
