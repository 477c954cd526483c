"""The service on every device: runs sandboxed WebAssembly plugins and serves the dashboard."""
