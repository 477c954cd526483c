"""Regenerates ``reference.json`` from ``wit/``: ``python -m device_host.contract_generate``.

Development only: it needs wasm-tools, which devices do not have. The dummy component is
compiled by the runtime (the one place that touches wasmtime) to read its surface.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fleet_common.compiler.validate import surface_of_file
from fleet_common.contract.interfaces import ALL_EXPORTS, ALL_IMPORTS, compatibility_key
from fleet_common.contract.reference import REFERENCE_PATH
from fleet_common.contract.wit import stage_wit


def generate_reference() -> dict[str, dict[str, str]]:
    """Builds a dummy component importing and exporting every interface and describes it."""
    wasm_tools = shutil.which("wasm-tools") or str(Path(sys.executable).with_name("wasm-tools"))
    world = "package local:reference;\n\nworld reference {\n"
    world += "".join(f"    import {name};\n" for name in ALL_IMPORTS)
    world += "".join(f"    export {name};\n" for name in ALL_EXPORTS)
    world += "}\n"
    with tempfile.TemporaryDirectory() as tmp:
        wit = stage_wit(Path(tmp) / "wit", world)
        core, component_path = Path(tmp) / "core.wasm", Path(tmp) / "reference.wasm"
        subprocess.run(
            [
                wasm_tools,
                "component",
                "embed",
                "--dummy",
                str(wit),
                "-w",
                "reference",
                "-o",
                str(core),
            ],
            check=True,
        )
        subprocess.run(
            [wasm_tools, "component", "new", str(core), "-o", str(component_path)], check=True
        )
        found = surface_of_file(component_path)
    surface = {**found.imports, **found.exports}
    return {compatibility_key(name): surface[name] for name in (*ALL_IMPORTS, *ALL_EXPORTS)}


def main() -> None:
    """Regenerates reference.json from the WIT; run after every change to ``wit/``."""
    text = json.dumps(generate_reference(), indent=2, sort_keys=True) + "\n"
    REFERENCE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE_PATH}")


if __name__ == "__main__":
    main()
