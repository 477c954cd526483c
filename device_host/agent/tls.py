"""The one place that decides whom this device believes on the network: the fleet CA only.

Both the HTTPS client and the MQTT channel take their `ssl.SSLContext` from here, so there
is no second path where the system store, an old protocol or a skipped hostname check
could creep in.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from device_host.errors import ConfigError


def pinned_context(ca_file: Path, client_cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A TLS ≥ 1.2 client context trusting only the CAs in ``ca_file``, hostname checked.

    ``client_cert`` is (certificate, key) for mutual TLS (the broker's per-device identity).
    Raises ConfigError naming the file when the bundle cannot be read.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[agent] ca_file {ca_file}: cannot load the fleet CA: {exc}") from None
    if client_cert is not None:
        certificate, key = client_cert
        context.load_cert_chain(certfile=str(certificate), keyfile=str(key))
    return context
