"""``device-host``: serve plugins on a device, or build a plugin from its folder."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import sys
from pathlib import Path

from device_host.errors import DeviceHostError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="device-host", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the device host (HTTP on port 3000)")
    serve.add_argument("-c", "--config", type=Path, help="TOML config file")
    build = commands.add_parser("build", help="build a plugin folder into a component")
    build.add_argument("plugin_dir", type=Path, nargs="+")
    build.add_argument("-o", "--output", type=Path, help="output file (one plugin only)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            return _serve(args.config)
        return _build(args.plugin_dir, args.output)
    except DeviceHostError as exc:
        print(f"device-host: {exc}", file=sys.stderr)
        return 1


def _serve(config_path: Path | None) -> int:
    from device_host.config import load_config
    from device_host.host import DeviceHost
    from device_host.http.app import create_app
    from device_host.http.server import serve

    config = load_config(config_path)
    _return_large_buffers_to_the_os()
    serve(create_app(DeviceHost(config)), config.server.host, config.server.port)
    return 0


def _return_large_buffers_to_the_os() -> None:
    """Has glibc mmap buffers over 1 MiB, so freeing one (component bytes) returns its pages.

    By default glibc raises the threshold after large frees and keeps such buffers in its
    heap: tens of MB on a device that has 512 MB.
    """
    m_mmap_threshold = -3
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, 1 << 20)


def _build(plugin_dirs: list[Path], output: Path | None) -> int:
    from device_host.build import build_plugin

    if output is not None and len(plugin_dirs) > 1:
        raise SystemExit("device-host build: --output takes one plugin folder")
    for plugin_dir in plugin_dirs:
        result = build_plugin(plugin_dir, output=output)
        source = "build cache" if result.cached else "componentize-py"
        print(f"{result.manifest.label}: {result.output} ({source}, sha256 {result.sha256[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
