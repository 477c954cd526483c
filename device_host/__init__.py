"""The service on every device: runs sandboxed WebAssembly plugins and serves the dashboard."""

__version__ = "0.1.0"
