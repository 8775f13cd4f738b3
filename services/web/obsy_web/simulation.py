"""The dashboard's "make it rain": a simulate command to the weather service, and its answer.

The command goes to ``<p>/weather/simulate/set`` with a fresh ``request_id``; the weather
service answers with a ``simulation_applied`` or ``simulation_refused`` event repeating it
(it obeys only with ``weather.allow_simulation`` on and INDI's weather simulator as its
source). The command carries its origin (the web account and role); the sender is recorded
as a ``command`` event of the web service, like the commands to the MCP.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from obsy.bus import Bus
from obsy.messages import CommandOrigin, WeatherSimulationCommand
from obsy_web.commands import NoAnswerError, command_event


class WeatherSimulationGateway:
    def __init__(self, bus: Bus, timeout: float) -> None:
        self.bus = bus
        self.topics = bus.topics
        self.timeout = timeout
        self._answers: dict[str, dict[str, Any]] = {}
        self._waiting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        bus.subscribe(self.topics.events("weather"), self._on_event, decode="json")

    def _on_event(self, topic: str, payload: Any) -> None:
        if not isinstance(payload, dict) or not str(payload.get("kind", "")).startswith("simulation_"):
            return
        request_id = (payload.get("data") or {}).get("request_id")
        with self._lock:
            done = self._waiting.get(request_id) if isinstance(request_id, str) else None
            if done is not None:
                self._answers[request_id] = payload
                done.set()

    def send(self, command: WeatherSimulationCommand, origin: CommandOrigin) -> dict[str, Any]:
        """Publish ``command`` for ``origin``; the weather service's answer event (raises NoAnswerError)."""
        request_id = secrets.token_hex(8)
        command = command.model_copy(update={"request_id": request_id, "user": origin.user, "origin": origin})
        done = threading.Event()
        with self._lock:
            self._waiting[request_id] = done
        try:
            self.bus.publish(self.topics.weather_simulate_command, command, qos=1)
            what = command.action.value + (f" {command.wind_speed:g} km/h" if command.wind_speed is not None else "")
            what += f" {command.cloud_kind.value}" if command.cloud_kind is not None else ""
            what += f" {command.cover:g} %" if command.cover is not None else ""
            self.bus.publish_event(command_event("weather/simulate", what, origin, request_id=request_id))
            if not done.wait(self.timeout):
                raise NoAnswerError(
                    f"the weather service did not answer the simulate command within {self.timeout:g} s "
                    "(is obsy-weather running and connected to the broker?)"
                )
            with self._lock:
                return self._answers.pop(request_id)
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)
                self._answers.pop(request_id, None)
