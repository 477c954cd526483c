"""wasmtime is touched only inside device_host/runtime/: every other module goes through it.

Tests kept inside the control plane's apps may use it to make test inputs (a core module).
"""

from __future__ import annotations

import ast

from tests.support import REPO

RUNTIME = REPO / "device_host" / "runtime"


def _imports_wasmtime(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == "wasmtime" for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "wasmtime":
            return True
    return False


def test_no_module_outside_the_runtime_imports_wasmtime():
    offenders = [
        str(path.relative_to(REPO))
        for package in ("device_host", "control_plane")
        for path in sorted((REPO / package).rglob("*.py"))
        if not path.is_relative_to(RUNTIME)
        and "tests" not in path.relative_to(REPO).parts
        and _imports_wasmtime(ast.parse(path.read_text()))
    ]

    assert offenders == []
