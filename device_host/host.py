"""The device host: wires hardware, the plugin runtime, the watcher and the scheduler together."""

from __future__ import annotations

import gc
import logging
import time

from device_host.agent import DeviceAgent
from device_host.config import HostConfig
from device_host.hardware import Dht22Sampler, GpioOutputs, Reading, open_dht22, open_gpio
from device_host.metrics import Metrics
from device_host.plugins.events import EventLog, PluginEvent
from device_host.plugins.manager import PluginManager
from device_host.plugins.quarantine import QuarantinePolicy
from device_host.plugins.scheduler import TickScheduler
from device_host.plugins.watcher import PluginDirectoryWatcher
from device_host.readings import ReadingHistory
from device_host.runtime import (
    ArtifactCache,
    EpochTicker,
    HostServices,
    LoadContext,
    create_engine,
)
from device_host.storage.kv import KvStores
from fleet_common import __version__
from fleet_common.compiler.settings import EngineSettings
from fleet_common.wire.events import EventKind

log = logging.getLogger(__name__)


class DeviceHost:
    """Everything one device runs besides the HTTP server; `start` and `stop` bracket its life."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.version = __version__
        self.started_at = time.time()
        self.metrics = Metrics()
        self.readings = ReadingHistory()
        self.events = EventLog()
        self.samplers = {pin: self._sampler(pin) for pin in self._sensor_pins()}
        self.gpio: GpioOutputs = open_gpio(config.gpio.driver, config.gpio.pins, config.gpio.chip)
        settings = EngineSettings()
        self.engine = create_engine(settings)
        self._ticker = EpochTicker(self.engine)
        self.kv_stores = KvStores(config.kv_dir)
        context = LoadContext(
            engine=self.engine,
            artifacts=ArtifactCache(config.artifact_dir, self.engine, settings),
            services=HostServices(sensors=self.samplers, gpio=self.gpio),
            kv_stores=self.kv_stores,
            pool_size=config.plugins.pool_size,
        )
        policy = QuarantinePolicy(
            max_traps=config.plugins.quarantine_traps,
            window_s=config.plugins.quarantine_window_s,
            base_backoff_s=config.plugins.quarantine_backoff_s,
            probation_s=config.plugins.probation_s,
        )
        self.plugins = PluginManager(
            context,
            policy,
            self.events,
            self.metrics,
            prune_compiled=config.state.compiled_dir is None,
            queue_limit=config.plugins.queue_limit,
        )
        self.agent: DeviceAgent | None = None
        self.watcher: PluginDirectoryWatcher | None = None
        self.source: PluginDirectoryWatcher | DeviceAgent
        """Where plugins come from: the local directory, or the agent's signed releases."""
        if config.plugins.source == "local":
            self.watcher = self.source = PluginDirectoryWatcher(
                config.plugins.dir, self.plugins, config.plugins.poll_interval_s
            )
        else:
            self.agent = self.source = DeviceAgent(
                config.agent,
                config.state.dir / "agent",
                self.version,
                self.plugins,
                self.readings,
                self.events,
                self.samplers,
            )
        self.scheduler = TickScheduler(self.plugins, self.readings, self.metrics)
        self.events.subscribe(self._forget_removed_plugins)

    def start(self) -> None:
        """Starts sampling, the plugin watcher and the scheduler; plugins load in the background."""
        self._ticker.start()
        for sampler in self.samplers.values():
            sampler.start()
        self.source.start()
        self.scheduler.start()
        log.info("device host %s started, plugins in %s", self.version, self.config.plugins.dir)

    @property
    def ready(self) -> bool:
        """Whether every plugin present at start-up has been loaded (or refused)."""
        return self.source.caught_up

    def stop(self) -> None:
        """Stops background work and drops every Store before the interpreter exits.

        A Store still alive at exit makes wasmtime's output threads panic, so this runs
        even on a signal.
        """
        self.source.stop()
        self.scheduler.stop()
        self.plugins.close()
        self.kv_stores.close()
        for sampler in self.samplers.values():
            sampler.stop()
        self.gpio.close()
        self._ticker.stop()
        gc.collect()

    def _forget_removed_plugins(self, event: PluginEvent) -> None:
        if event.kind is EventKind.REMOVED:
            self.readings.drop_plugin(event.plugin)
            self.metrics.forget_plugin(event.plugin)

    def _sensor_pins(self) -> tuple[int, ...]:
        return () if self.config.sensor.driver == "none" else self.config.sensor.pins

    def _sampler(self, pin: int) -> Dht22Sampler:
        sensor = self.config.sensor
        options = {}
        if sensor.driver == "simulated":
            options = {
                "failure_rate": sensor.failure_rate,
                "hang": sensor.hang,
                "dead": sensor.dead,
                "base_temperature_c": sensor.base_temperature_c,
            }
        driver = open_dht22(sensor.driver, pin, **options)

        def record(reading: Reading) -> None:
            self.readings.record_sensor(pin, reading)

        return Dht22Sampler(
            driver,
            pin=pin,
            interval_s=sensor.interval_s,
            stale_after_s=sensor.stale_after_s,
            read_timeout_s=sensor.read_timeout_s,
            on_reading=record,
        )
