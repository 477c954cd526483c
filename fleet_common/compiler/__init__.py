"""Compiling components for device classes: engine settings, engine keys, the compiler process.

With `device_host.runtime`, the only code that imports wasmtime: the runtime runs plugins,
this compiles them (on a device that may, and on the control plane for every class).
Importing this package imports nothing: the compiler process runs in an emulated Python
whose only third-party package is wasmtime. Import the submodules.
"""
