"""Runs a dashboard plugin's ``app.py`` natively in CPython, for the sandbox-cost baseline.

The plugin is imported unchanged. Its ``wit_world`` and ``componentize_py_types`` modules
are the Python bindings componentize-py generates (``componentize-py bindings``) from the
same WIT world its component is built from, so types, enums and errors are the real ones.
Each import function, which in those bindings is only a stub, is replaced by a call to the
very host function the device host registers on the plugin's Linker
(``device_host.runtime._host_functions``), closed over the same grants and services. So
the native path does the same host-side work and only the sandbox is missing.

One plugin per process: the bindings are ordinary modules.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import importlib
import re
import shutil
import subprocess
import sys
import tempfile
import typing
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from device_host.runtime import GuestLog, HostServices, HttpRequest, HttpResponse
from device_host.runtime import host_functions as host
from device_host.storage.kv import KvStores
from fleet_common.contract import interfaces as iface
from fleet_common.contract.wit import plugin_world, stage_wit, wit_dir
from fleet_common.contract.worlds import granted_imports
from fleet_common.manifest import Manifest, load_manifest

BINDINGS_CACHE = Path(__file__).resolve().parent / "results" / "work" / "native-bindings"
_RAISES = re.compile(r"Err\(([\w.]+)\)")


class _Registry:
    """Stands in for a wasmtime ``LinkerInstance``: keeps what ``add_func`` registers."""

    def __init__(self) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}

    def add_func(self, name: str, function: Callable[..., Any]) -> None:
        self.functions[name] = function


def host_functions_for(
    manifest: Manifest, services: HostServices, kv_stores: KvStores, guest_log: GuestLog
) -> dict[str, dict[str, Callable[..., Any]]]:
    """The host functions `build_linker` links for ``manifest``: {interface: {name: fn}}."""
    caps = manifest.capabilities
    granted = granted_imports(manifest)
    adders: dict[str, Callable[[Any], None]] = {
        iface.LOG: lambda r: host.add_log(r, guest_log),
        iface.DHT22: lambda r: host.add_dht22(r, caps.dht22_pins, services),
        iface.GPIO: lambda r: host.add_gpio(r, caps.gpio_out_pins, services),
        iface.KV: lambda r: host.add_kv(
            r, kv_stores.for_plugin(manifest.name, caps.kv_quota_bytes)
        ),
    }
    functions = {}
    for interface, add in adders.items():
        if interface in granted:
            registry = _Registry()
            add(registry)
            functions[interface.split("/")[1].split("@")[0]] = registry.functions
    return functions


def generate_bindings(manifest: Manifest) -> Path:
    """componentize-py's Python bindings for the plugin's world, cached by the WIT's hash."""
    world = plugin_world(manifest, self_check=True)
    digest = hashlib.sha256(world.encode() + metadata.version("componentize-py").encode())
    for path in sorted(wit_dir().rglob("*.wit")):
        digest.update(path.read_bytes())
    target = BINDINGS_CACHE / digest.hexdigest()[:16]
    if not target.is_dir():
        componentize_py = shutil.which("componentize-py") or str(
            Path(sys.executable).with_name("componentize-py")
        )
        with tempfile.TemporaryDirectory(prefix="native-bindings-") as tmp:
            wit = stage_wit(Path(tmp) / "wit", world)
            out = Path(tmp) / "out"
            subprocess.run(
                [componentize_py, "-d", str(wit), "-w", "plugin", "bindings", str(out)],
                check=True,
                capture_output=True,
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(out, target)
    return target


def _to_host(value: Any) -> Any:
    """A guest argument as wasmtime-py hands it to a host function (enums by case name)."""
    if isinstance(value, enum.Enum):
        return value.name.lower().replace("_", "-")
    return value


def _from_host(value: Any, declared: Any) -> Any:
    """A host function's value as the guest's bindings type it (records to dataclasses)."""
    if value is not None and dataclasses.is_dataclass(declared):
        hints = typing.get_type_hints(declared)
        return declared(
            **{
                f.name: _from_host(getattr(value, f.name.replace("_", "-")), hints[f.name])
                for f in dataclasses.fields(declared)
            }
        )
    return value


def _backed_by(
    host_function: Callable[..., Any], stub: Callable[..., Any], module: ModuleType, err: type
) -> Callable[..., Any]:
    """Replaces a bindings stub: calls the host function and converts like the canonical ABI.

    wasmtime-py hands a ``result`` over as a bare value when its ok and err types differ
    (true of every result in the contract), so a string where none is declared is the error.
    """
    returns = typing.get_type_hints(stub).get("return")
    raises = _RAISES.search(stub.__doc__ or "")
    error_type: Any = None
    if raises:
        name = raises[1].rsplit(".", 1)[-1]
        error_type = str if name == "str" else getattr(module, name)

    def call(*args: Any) -> Any:
        value = host_function(None, *map(_to_host, args))
        if error_type is not None and isinstance(value, str) and returns is not str:
            if isinstance(error_type, type) and issubclass(error_type, enum.Enum):
                raise err(error_type[value.upper().replace("-", "_")])
            raise err(value)
        return _from_host(value, returns)

    call.__name__ = stub.__name__
    call.__doc__ = stub.__doc__
    return call


class NativePlugin:
    """One dashboard plugin imported into this interpreter; `handle` is thread-safe if it is."""

    def __init__(
        self, folder: Path, services: HostServices, kv_stores: KvStores, guest_log: GuestLog
    ) -> None:
        self.manifest = load_manifest(folder / "manifest.toml")
        if self.manifest.world != "dashboard":
            raise ValueError(f"{self.manifest.label} is not a dashboard plugin")
        for path in (str(generate_bindings(self.manifest)), str(folder)):
            if path not in sys.path:
                sys.path.insert(0, path)
        err = importlib.import_module("componentize_py_types").Err
        functions = host_functions_for(self.manifest, services, kv_stores, guest_log)
        for interface, by_name in functions.items():
            module = importlib.import_module(f"wit_world.imports.{interface.replace('-', '_')}")
            for wit_name, host_function in by_name.items():
                name = wit_name.replace("-", "_")
                setattr(module, name, _backed_by(host_function, getattr(module, name), module, err))
        self._types = importlib.import_module("wit_world.exports.http_handler")
        self._handler = importlib.import_module("app").HttpHandler()

    def handle(self, request: HttpRequest) -> HttpResponse:
        try:
            body = self._types.Body_Text(request.body.decode())
        except UnicodeDecodeError:
            body = self._types.Body_Base64(base64.b64encode(request.body).decode())
        reply = self._handler.handle(
            self._types.Request(
                request.method, request.path, request.query, list(request.headers), body
            )
        )
        payload = reply.body.value
        if isinstance(reply.body, self._types.Body_Base64):
            return HttpResponse(reply.status, list(reply.headers), base64.b64decode(payload))
        return HttpResponse(reply.status, list(reply.headers), payload.encode())
