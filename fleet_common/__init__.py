"""What the device host and the control plane both speak: manifests, the contract, the wire.

Imports nothing on purpose: the compile child runs in an emulated arm64 Python whose only
third-party package is wasmtime, so importing this package must cost nothing.
"""

__version__ = "0.1.0"
"""The release the device host and the control plane are built from (one bundle version)."""
