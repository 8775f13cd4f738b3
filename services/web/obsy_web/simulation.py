"""The dashboard's "make it rain": a simulate command to the weather service, and its answer.

The command goes to ``<p>/weather/simulate/set`` with a fresh ``request_id``; the weather
service answers with a ``simulation_applied`` or ``simulation_refused`` event repeating it
(it obeys only with ``weather.allow_simulation`` on and INDI's weather simulator as its
source). The command carries its origin (the web account and role); the sender is recorded
as a ``command`` event of the web service, like the commands to the MCP.
"""

from __future__ import annotations

from typing import Any

from obsy.bus import Bus
from obsy.messages import CommandOrigin, WeatherSimulationCommand
from obsy_web.commands import AnswersByRequestId, command_event


class WeatherSimulationGateway:
    def __init__(self, bus: Bus, timeout: float) -> None:
        self.bus = bus
        self.topics = bus.topics
        self.timeout = timeout
        self._answers = AnswersByRequestId(timeout)
        bus.subscribe(self.topics.events("weather"), self._on_event, decode="json")

    def _on_event(self, topic: str, payload: Any) -> None:
        if isinstance(payload, dict) and str(payload.get("kind", "")).startswith("simulation_"):
            self._answers.answered((payload.get("data") or {}).get("request_id"), payload)

    def send(self, command: WeatherSimulationCommand, origin: CommandOrigin) -> dict[str, Any]:
        """Publish ``command`` for ``origin``; the weather service's answer event (raises NoAnswerError)."""

        def publish(request_id: str) -> None:
            sent = command.model_copy(update={"request_id": request_id, "user": origin.user, "origin": origin})
            self.bus.publish(self.topics.weather_simulate_command, sent, qos=1)
            what = sent.action.value + (f" {sent.wind_speed:g} km/h" if sent.wind_speed is not None else "")
            what += f" {sent.cloud_kind.value}" if sent.cloud_kind is not None else ""
            what += f" {sent.cover:g} %" if sent.cover is not None else ""
            self.bus.publish_event(command_event("weather/simulate", what, origin, request_id=request_id))

        return self._answers.ask(
            publish,
            f"the weather service did not answer the simulate command within {self.timeout:g} s "
            "(is obsy-weather running and connected to the broker?)",
        )
