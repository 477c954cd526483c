"""Which Python compiles for a device class: this one, or an emulated one for another CPU."""

from __future__ import annotations

from control_plane.builds.models import DeviceClass
from fleet_common.compiler.emulation import emulated_python
from fleet_common.compiler.run import Interpreter
from fleet_common.compiler.settings import native_target


def interpreter_for(device_class: DeviceClass) -> Interpreter:
    """The native interpreter for this machine's target, else an arm64 one under qemu-user.

    The native wasmtime wheel aborts the whole process on a foreign target, so a foreign
    class is never compiled in this process or by its own interpreter.
    """
    if device_class.target == native_target():
        return Interpreter()
    argv, env = emulated_python()
    return Interpreter(tuple(argv), env, emulated=True)
