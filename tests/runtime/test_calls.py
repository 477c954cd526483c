"""Results and failures of guest calls, normalised into the host's own types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from wasmtime.component import Component, Variant

from device_host.errors import BlockingCallForbidden, TrapKind
from device_host.runtime._calls import classify_failure, split_result

SHAPES_WIT = """
package test:shapes;

interface shapes {
    same-types: func() -> result<string, string>;
    different-types: func() -> result<u32, string>;
    no-ok-payload: func() -> result<_, string>;
}

world shapes-world {
    export shapes;
}
"""


@pytest.fixture(scope="module")
def result_types(tmp_path_factory) -> dict[str, object]:
    """Real wasmtime result types, from a dummy component wasm-tools builds from WIT."""
    tmp = tmp_path_factory.mktemp("shapes")
    (tmp / "shapes.wit").write_text(SHAPES_WIT)
    wasm_tools = str(Path(sys.executable).with_name("wasm-tools"))
    subprocess.run(
        [wasm_tools, "component", "embed", "--dummy", str(tmp), "-o", str(tmp / "core.wasm")],
        check=True,
    )
    subprocess.run(
        [wasm_tools, "component", "new", str(tmp / "core.wasm"), "-o", str(tmp / "c.wasm")],
        check=True,
    )
    engine = wasmtime.Engine()
    component = Component.from_file(engine, tmp / "c.wasm")
    interface = component.type.exports(engine)["test:shapes/shapes"].ty
    return {name: item.ty.result for name, item in interface.exports(engine).items()}


def test_a_result_whose_arms_share_a_python_type_comes_tagged(result_types):
    shape = result_types["same-types"]

    assert split_result(shape, Variant("ok", "fine")) == (True, "fine")
    assert split_result(shape, Variant("err", "broken")) == (False, "broken")


def test_a_result_whose_arms_differ_comes_bare(result_types):
    shape = result_types["different-types"]

    assert split_result(shape, 7) == (True, 7)
    assert split_result(shape, "broken") == (False, "broken")


def test_a_result_without_an_ok_payload_is_ok_when_none(result_types):
    shape = result_types["no-ok-payload"]

    assert split_result(shape, None) == (True, None)
    assert split_result(shape, "broken") == (False, "broken")


def test_a_bare_value_where_a_tagged_one_is_due_is_a_type_error(result_types):
    with pytest.raises(TypeError, match="expected a tagged result"):
        split_result(result_types["same-types"], "fine")


@pytest.mark.parametrize(
    ("message", "guest_error", "kind"),
    [
        ("error while executing\n\nCaused by:\n    wasm trap: interrupt", None, TrapKind.TIMEOUT),
        (
            "wasm trap: wasm `unreachable` instruction executed",
            "MemoryError",
            TrapKind.OUT_OF_MEMORY,
        ),
        ("wasm trap: wasm `unreachable` instruction executed", "ValueError: x", TrapKind.CRASH),
        ("wasm trap: out of bounds memory access", None, TrapKind.OUT_OF_MEMORY),
    ],
)
def test_wasmtime_failures_are_classified_by_their_message(message, guest_error, kind):
    assert classify_failure(wasmtime.WasmtimeError(message), guest_error)[0] is kind


def test_a_refused_sleep_is_a_blocking_call():
    kind, detail = classify_failure(BlockingCallForbidden("no sleeping"), None)

    assert (kind, detail) == (TrapKind.BLOCKING_CALL, "no sleeping")


def test_a_failing_host_function_is_a_host_error():
    kind, detail = classify_failure(KeyError("pin"), None)

    assert kind is TrapKind.HOST_ERROR
    assert "KeyError" in detail
