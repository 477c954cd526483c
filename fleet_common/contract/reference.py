"""The contract's reference signatures, generated from ``wit/`` and shipped as JSON.

Devices have no WIT toolchain, so the signatures each interface must have are rendered
once at development time (``python -m device_host.contract_generate``) from a dummy
component that wasm-tools builds straight from the WIT. A test keeps the JSON in step
with the WIT.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

REFERENCE_PATH = Path(__file__).with_name("reference.json")


@cache
def reference_signatures() -> dict[str, dict[str, str]]:
    """Compatibility key of every contract interface mapped to its functions' signatures."""
    data: dict[str, dict[str, str]] = json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))
    return data
