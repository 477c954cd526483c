"""Host configuration: a TOML file, then ``DEVICE_HOST_<SECTION>_<KEY>`` environment overrides.

Everything is read and type-checked here, once, so a typo fails at start-up with a
message naming the key instead of surfacing later.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import platform
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from device_host.errors import ConfigError

ENV_PREFIX = "DEVICE_HOST_"
LEGACY_KEYS = {"agent": frozenset({"agent_url"})}
"""Keys older hosts' config files carry that no longer mean anything: ignored with a warning,
so that upgrading the host does not stop a device at start-up (the push they configured is
gone)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 3000
    max_connections: int = 256
    """Open connections at once; at the cap the oldest idle one is closed for a new one, and a
    few more are kept for ``/healthz`` when every connection is busy."""
    header_timeout_s: float = 10.0
    """From connect to a complete request line and headers."""
    body_timeout_s: float = 30.0
    """From complete headers to a complete request body."""
    keepalive_s: float = 15.0
    """How long an idle keep-alive connection stays open for its next request."""
    access_token_file: Path | None = None
    """The device credential for ``/healthz`` detail and ``/metrics`` from off the device;
    default ``<state.dir>/access-token``, created (0600) on first start."""


@dataclass(frozen=True)
class PluginsConfig:
    dir: Path = Path("plugins")
    poll_interval_s: float = 1.0
    pool_size: int = 2
    source: str = "signed"
    """``signed``: only releases the fleet key signed, via the agent. ``local``: development
    mode, unsigned plugins from ``dir``, hot-swapped when their files change."""
    dashboard: str = "dashboard"
    """The dashboard plugin served at ``/``."""
    quarantine_traps: int = 3
    """Traps within ``quarantine_window_s`` that quarantine a plugin."""
    quarantine_window_s: float = 60.0
    quarantine_backoff_s: float = 10.0
    queue_limit: int = 128
    """Requests that may wait for one plugin; past that it answers 503 at once."""
    probation_s: float = 60.0
    """How long a replaced version stays loaded to answer for a new one that traps."""
    """First quarantine; each relapse doubles it, up to five minutes."""


@dataclass(frozen=True)
class AgentConfig:
    """How this device reaches its control plane (used when ``[plugins] source = "signed"``)."""

    control_plane_url: str = ""
    """Empty: no control plane; the device runs what it accepted before."""
    enrollment_token: str = ""
    device_name: str = field(default_factory=socket.gethostname)
    ca_file: Path | None = None
    """The fleet CA bundle, the only issuer this device believes for the control plane's
    HTTPS and the broker's MQTT over TLS (no system store). Needed for https:// and for the
    notice channel; plain http:// is accepted only to a loopback address."""
    trusted_keys_dir: Path = Path("/etc/device-host/trusted-keys")
    heartbeat_interval_s: float = 10.0
    compile_locally: bool = field(default_factory=lambda: platform.machine() == "x86_64")
    """Compile a release here when the control plane sent no artifact for this engine.
    On by default only on x86_64 (developer machines): a compile takes ~400 MB, more
    than a Pi Zero 2 W has, and tens of seconds of a Pi 4's CPU."""


@dataclass(frozen=True)
class StateConfig:
    dir: Path = Path("var/device-host")
    compiled_dir: Path | None = None
    """Compiled components; defaults to ``<dir>/compiled``. Shareable: entries are content-keyed,
    and a directory set here is never pruned (other hosts may be using its entries)."""


@dataclass(frozen=True)
class SensorConfig:
    driver: str = "simulated"
    """``simulated``, ``adafruit`` (a real DHT22 on a Pi) or ``none``."""
    pins: tuple[int, ...] = (4,)
    interval_s: float = 2.0
    stale_after_s: float = 10.0
    read_timeout_s: float = 1.0
    failure_rate: float = 0.0
    """Simulated driver only, like the rest of this section: share of reads that fail."""
    hang: bool = False
    dead: bool = False
    base_temperature_c: float = 21.0


@dataclass(frozen=True)
class GpioConfig:
    driver: str = "simulated"
    """``simulated`` or ``gpiod`` (the Linux GPIO character device)."""
    chip: str = "/dev/gpiochip0"
    pins: tuple[int, ...] = (17,)


@dataclass(frozen=True)
class HostConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)

    @property
    def artifact_dir(self) -> Path:
        return self.state.compiled_dir or self.state.dir / "compiled"

    @property
    def kv_dir(self) -> Path:
        return self.state.dir / "kv"


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> HostConfig:
    """Reads ``path`` (if given), applies environment overrides and validates the result."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
    sections = {f.name: f.type for f in dataclasses.fields(HostConfig)}
    unknown = set(data) - set(sections)
    if unknown:
        raise ConfigError(f"unknown config sections: {sorted(unknown)}")
    built = {}
    hints = get_type_hints(HostConfig)
    for section in sections:
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"[{section}] must be a table")
        built[section] = _build_section(section, hints[section], raw, environ)
    config = HostConfig(**built)
    _validate(config)
    return config


def _build_section(section: str, cls: Any, raw: dict[str, Any], environ: Mapping[str, str]) -> Any:
    hints = get_type_hints(cls)
    for key in LEGACY_KEYS.get(section, frozenset()) & set(raw):
        log.warning("[%s] %s is no longer used and is ignored; remove it", section, key)
        raw = {k: v for k, v in raw.items() if k != key}
    unknown = set(raw) - set(hints)
    if unknown:
        raise ConfigError(f"unknown keys in [{section}]: {sorted(unknown)}")
    values = {}
    for key, hint in hints.items():
        env_name = f"{ENV_PREFIX}{section}_{key}".upper()
        if env_name in environ:
            values[key] = _from_env(env_name, environ[env_name], hint)
        elif key in raw:
            values[key] = _coerce(f"[{section}] {key}", raw[key], hint)
    return cls(**values)


def _from_env(name: str, text: str, hint: Any) -> Any:
    if hint is bool:
        if text.lower() not in {"1", "0", "true", "false", "yes", "no"}:
            raise ConfigError(f"{name}={text!r} is not a boolean")
        return text.lower() in {"1", "true", "yes"}
    if hint == tuple[int, ...]:
        parts = [p for p in text.replace(",", " ").split() if p]
        return _coerce(name, [_int(name, p) for p in parts], hint)
    if hint is int:
        return _int(name, text)
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not a number") from None
    return _coerce(name, text, hint)


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer") from None


def _coerce(name: str, value: Any, hint: Any) -> Any:
    if hint in (Path, Path | None) and isinstance(value, str):
        return Path(value)
    if (
        hint == tuple[int, ...]
        and isinstance(value, list)
        and all(isinstance(v, int) for v in value)
    ):
        return tuple(value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if (
        isinstance(hint, type)
        and isinstance(value, hint)
        and not (hint is int and isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"{name} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def _validate_transport(agent: AgentConfig) -> None:
    """HTTPS with the pinned fleet CA, or plain HTTP that never leaves this machine."""
    url = agent.control_plane_url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError(f"[agent] control_plane_url {url!r} is not a URL") from None
    if not parts.hostname:
        raise ConfigError(f"[agent] control_plane_url {url!r} has no host")
    if parts.scheme == "https" and agent.ca_file is None:
        raise ConfigError(
            f"[agent] control_plane_url {url} is HTTPS but [agent] ca_file is not set: "
            "the device trusts only the fleet CA, never the system store"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"[agent] control_plane_url {url} is plain HTTP to {parts.hostname}, which is not "
            "a loopback address: device tokens would travel in clear; use https:// with "
            "[agent] ca_file"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate(config: HostConfig) -> None:
    if not 0 < config.server.port < 65536:
        raise ConfigError(f"[server] port {config.server.port} is not a TCP port")
    if not 8 <= config.server.max_connections <= 65536:
        raise ConfigError("[server] max_connections must be 8..65536")
    for key in ("header_timeout_s", "body_timeout_s", "keepalive_s"):
        seconds = getattr(config.server, key)
        if not 0.1 <= seconds <= 3600:
            raise ConfigError(f"[server] {key} must be 0.1..3600 seconds, got {seconds}")
    if config.sensor.driver not in {"simulated", "adafruit", "none"}:
        raise ConfigError(
            f"[sensor] driver {config.sensor.driver!r}: use simulated, adafruit or none"
        )
    if config.gpio.driver not in {"simulated", "gpiod"}:
        raise ConfigError(f"[gpio] driver {config.gpio.driver!r}: use simulated or gpiod")
    if config.plugins.source not in {"signed", "local"}:
        raise ConfigError(f"[plugins] source {config.plugins.source!r}: use signed or local")
    if config.plugins.source == "signed" and not config.agent.control_plane_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigError(
            '[plugins] source = "signed" needs [agent] control_plane_url (http:// or https://); '
            'for unsigned plugins from a folder set source = "local"'
        )
    if config.agent.control_plane_url:
        _validate_transport(config.agent)
    if not 1 <= config.plugins.pool_size <= 16:
        raise ConfigError("[plugins] pool_size must be 1..16")
    if not 1 <= config.plugins.queue_limit <= 4096:
        raise ConfigError("[plugins] queue_limit must be 1..4096")
    if not 0 <= config.plugins.probation_s <= 3600:
        raise ConfigError("[plugins] probation_s must be 0..3600 (0 turns probation off)")
    if not 0.0 <= config.sensor.failure_rate <= 1.0:
        raise ConfigError("[sensor] failure_rate must be 0..1")
