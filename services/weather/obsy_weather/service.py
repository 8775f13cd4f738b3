"""The weather service: sources in, normalised readings and a safety verdict out.

Every delivery from a source updates the :class:`~obsy_weather.readings.ReadingStore` and
re-evaluates at once; the runner's poll (every second) re-evaluates too, so staleness and
the end of the safe delay are noticed without new data. ``<p>/weather/state`` and
``<p>/weather/safety`` are retained and published as soon as they change, and both are
republished every ``publish_interval`` seconds so a consumer can tell a quiet service from
a dead one. The clock is the runner's (``service.clock``, ``obsy.runner.Service``): tests hand theirs to drive time.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.homeassistant import Entity
from obsy.messages import (
    Clock,
    CommandAnswer,
    CommandOrigin,
    EventKind,
    SafetyVerdict,
    WeatherSimulationAction,
    WeatherSimulationCommand,
    WeatherState,
    utc_now,
    validation_problems,
)
from obsy.runner import Service, run_service
from obsy_weather import ha, simulator
from obsy_weather.config import WeatherConfig
from obsy_weather.readings import ReadingStore, Sample
from obsy_weather.safety import SafetyEvaluator
from obsy_weather.sources import WeatherSource, build_source
from obsy_weather.sources.indi import IndiWeatherSource


def _state_key(state: WeatherState) -> tuple[Any, ...]:
    """What makes a state "changed": values, their sources and staleness (not their ages)."""
    return tuple((name, r.value, r.source, r.stale) for name, r in sorted(state.readings.items()))


def _verdict_key(verdict: SafetyVerdict) -> tuple[Any, ...]:
    """Changes of the verdict: safe, since, and the reasons (the safe-delay countdown excluded)."""
    reasons = tuple((r.quantity, r.message if r.quantity != "safe_delay" else "") for r in verdict.reasons)
    return (verdict.safe, verdict.since, reasons)


class WeatherService(Service):
    name = "weather"
    poll_interval = 1.0

    def __init__(self, config: ObsyConfig, bus: Bus, *, clock: Clock = utc_now) -> None:
        super().__init__(config, bus, clock=clock)
        settings: WeatherConfig = self.settings
        self.store = ReadingStore()
        self.evaluator = SafetyEvaluator(settings.limits, settings.safe_delay)
        self.publish_interval = settings.publish_interval
        self.sources: list[WeatherSource] = [
            build_source(source, self.on_samples, self.now, obsy=config, bus=bus)
            for source in settings.sources
            if source.enabled
        ]
        self._lock = threading.RLock()
        self._state_key: tuple[Any, ...] | None = None
        self._verdict_key: tuple[Any, ...] | None = None
        self._last_publish: datetime | None = None
        self.state: WeatherState | None = None
        self.verdict: SafetyVerdict | None = None
        self._simulation_lock = threading.Lock()

    def now(self) -> datetime:
        return self.clock()

    # --- runner hooks --------------------------------------------------------------
    def start(self) -> None:
        self.refresh(force=True)  # the initial state: nothing known yet, so unsafe with reasons
        for source in self.sources:
            source.start()
        self.bus.subscribe(self.topics.weather_simulate_command, self.on_simulate, decode="json")

    def poll(self) -> None:
        self.refresh()

    def stop(self) -> None:
        for source in self.sources:
            try:
                source.stop()
            except Exception:
                self.log.exception("weather source %s did not stop cleanly", source.name)

    def health_details(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "safe": verdict.safe if verdict else None,
            "sources": {source.name: source.status() for source in self.sources},
            "simulation_allowed": self.settings.allow_simulation,
        }

    # --- readings and verdict ------------------------------------------------------
    def on_samples(self, samples: list[Sample]) -> None:
        for sample in samples:
            self.store.put(sample)
        self.refresh()

    def refresh(self, *, force: bool = False) -> SafetyVerdict:
        """Re-evaluate now; publish what changed, or everything when the republish interval is up."""
        with self._lock:
            now = self.now()
            current = self.store.current(now)
            verdict = self.evaluator.evaluate(current, now)
            state = WeatherState(readings={name: c.to_reading() for name, c in current.items()}, timestamp=now)
            due = (
                force
                or self._last_publish is None
                or (now - self._last_publish).total_seconds() >= self.publish_interval
            )
            verdict_key, state_key = _verdict_key(verdict), _state_key(state)
            if due or verdict_key != self._verdict_key:
                self.bus.publish(self.topics.weather_safety, verdict, qos=1, retain=True)
                self._verdict_key = verdict_key
            if due or state_key != self._state_key:
                self.bus.publish(self.topics.weather_state, state, qos=1, retain=True)
                self._state_key = state_key
            if due:
                self._last_publish = now
            self.state, self.verdict = state, verdict
            return verdict

    # --- simulated weather (demonstrations) -------------------------------------------
    def on_simulate(self, topic: str, payload: Any) -> None:
        """A simulate command: checked here, carried out on its own thread (INDI waits take seconds)."""
        request_id = payload.get("request_id") if isinstance(payload, dict) else None
        try:
            command = WeatherSimulationCommand.model_validate(payload)
        except ValidationError as error:
            reason = f"invalid simulate command on {topic}: {validation_problems(error)}"
            self._simulation_refused(reason, request_id, None)
            return
        if not self.settings.allow_simulation:
            self._simulation_refused(
                "simulated weather is not allowed here (weather.allow_simulation is off; "
                "it is for demonstrations with INDI's weather simulator)",
                command.request_id,
                command,
            )
            return
        if command.action is WeatherSimulationAction.CLOUDS:
            threading.Thread(target=self._simulate_clouds, args=(command,), name="weather-clouds", daemon=True).start()
            return
        source = next((s for s in self.sources if isinstance(s, IndiWeatherSource)), None)
        if source is None:
            self._simulation_refused("no INDI weather source is configured: nothing to simulate", request_id, command)
            return
        threading.Thread(target=self._simulate, args=(source, command), name="weather-simulate", daemon=True).start()

    def _simulate(self, source: IndiWeatherSource, command: WeatherSimulationCommand) -> None:
        with self._simulation_lock:
            try:
                values = simulator.apply(source.client, source.device, command.action, command.wind_speed)
            except simulator.SimulationError as error:
                self._simulation_refused(str(error), command.request_id, command)
                return
        self._simulation_applied(command, f"simulated weather on {source.device}", values, source=source.name)

    def _simulate_clouds(self, command: WeatherSimulationCommand) -> None:
        target = simulator.cloud_target(self.config)
        with self._simulation_lock:
            try:
                values = simulator.apply_clouds_at(
                    target, command.cloud_kind, command.cover, connect_timeout=self.config.indi.connect_timeout
                )
            except simulator.SimulationError as error:
                self._simulation_refused(str(error), command.request_id, command)
                return
        self._simulation_applied(command, f"simulated sky on {target.device}", values, device=target.device)

    def _simulation_applied(
        self, command: WeatherSimulationCommand, what: str, values: dict[str, Any], **where: str
    ) -> None:
        """The answer to a simulate command that was carried out: ``where`` names the source or device."""
        answer = CommandAnswer.of(
            "simulate",
            command.action.value,
            accepted=True,
            origin=command.origin,
            request_id=command.request_id,
            note=simulator.describe(command.action, values),
            action=command.action.value,
            values=values,
            user=command.user,
            **where,
        )
        event = answer.as_event(self.name, f"{what}: {answer.note}, asked by {_sender(command)}")
        self.bus.publish_event(event.model_copy(update={"level": "warning"}))  # the weather is not real now

    def _simulation_refused(
        self, reason: str, request_id: str | None, command: WeatherSimulationCommand | None
    ) -> None:
        """The answer to a simulate command that is not carried out (the request id only when it is short)."""
        self.log.warning("simulate command refused: %s", reason, extra={"event": EventKind.COMMAND_REJECTED})
        answer = CommandAnswer.of(
            "simulate",
            command.action.value if command else "?",
            accepted=False,
            origin=command.origin if command else None,
            request_id=request_id,
            reasons=[reason],
            action=command.action.value if command else None,
            user=command.user if command else None,
            reason=reason,  # as before the one contract (data.reason)
        )
        self.bus.publish_event(answer.as_event(self.name, f"simulate command refused: {reason}"))

    # --- Home Assistant --------------------------------------------------------------
    def ha_entities(self) -> list[Entity]:
        return ha.entities(self.topics)


def main(argv: list[str] | None = None) -> int:
    from obsy_weather.cli import COMMANDS

    return run_service(WeatherService, argv, COMMANDS)


def _sender(command: WeatherSimulationCommand) -> str:
    if command.origin is None and command.user:
        return command.user  # an older web service: only the account name
    return (command.origin or CommandOrigin()).describe()
