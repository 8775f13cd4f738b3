"""The mcp service process: wires the bus, INDI and Ekos to the :class:`Controller`.

The controller runs on its own thread, not in ``poll``: a closing sequence takes minutes
and must not stop heartbeats. The INDI connection is the MCP's own (not through the
broker), so the roof can be closed while the broker is gone. Stopping the service
(SIGTERM, SIGINT) closes the roof first in auto mode (``shutdown_close_timeout``); a second
SIGTERM or SIGINT exits at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.homeassistant import Entity
from obsy.indi import IndiClient, IndiError
from obsy.messages import (
    Clock,
    CloudState,
    Command,
    Event,
    InvalidCommandError,
    McpState,
    SafetyVerdict,
    SchedulerPlan,
    ServiceHealth,
    request_id_of,
    utc_now,
)
from obsy.runner import Service
from obsy_mcp import ha
from obsy_mcp.commands import Answer
from obsy_mcp.controller import Controller
from obsy_mcp.ekos import Ekos
from obsy_mcp.planrequest import PlanRequester

#: What a central site may command through its bridge (<p>/mcp/remote/<thing>/set): closing, never opening.
REMOTE_COMMANDS = {"roof": ("CLOSE", "STOP"), "night": ("ABORT",)}


class BusOutbox:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def state(self, state: McpState) -> None:
        self.bus.publish(self.bus.topics.mcp_state, state, qos=1, retain=True)

    def event(self, event: Event) -> None:
        self.bus.publish_event(event)
        fired = ha.entity_event(event)
        if fired is not None:  # not retained: Home Assistant would fire it again on every reconnect
            entity, payload = fired
            self.bus.publish(ha.event_topic(self.bus.topics, entity), payload, qos=1, retain=False)


class McpService(Service):
    name = "mcp"

    def __init__(self, config: ObsyConfig, bus: Bus, *, clock: Clock = utc_now, **controller_options: Any) -> None:
        # ``clock`` is the wall clock every service has; the controller times its steps and ages on a monotonic one.
        super().__init__(config, bus, clock=clock)
        self.indi = IndiClient.from_config(config.indi, timeout=config.mcp.devices.connect_timeout)
        self.plan_requester = PlanRequester(
            lambda request: bus.publish(bus.topics.scheduler_plan_command, request, qos=1),
            config.mcp.ekos.plan_timeout,
            scheduler_online=lambda: self.controller.inputs.is_online("scheduler"),
        )
        self.ekos = (
            Ekos(
                config.mcp.ekos,
                self.plan_requester.fresh_schedule,
                site_timezone=config.site.timezone,
                capture_camera=config.setting_of("scheduler", "ekos.camera", "CCD Simulator"),
            )
            if config.mcp.ekos.enabled
            else None
        )
        self.controller = Controller(
            config,
            self.indi,
            BusOutbox(bus),
            ekos=self.ekos,
            broker_connected=bus.connected.is_set,
            **controller_options,
        )

    def start(self) -> None:
        try:
            self.indi.connect(timeout=min(5.0, self.config.indi.connect_timeout))
        except IndiError as error:  # the controller keeps trying; an unknown roof is never moved blind
            self.log.warning("indiserver not reachable yet: %s", error)
        topics = self.topics
        inputs = self.controller.inputs
        self.bus.subscribe(topics.weather_safety, lambda _t, v: self._input(inputs.set_verdict, v), SafetyVerdict)
        self.bus.subscribe(topics.clouddetect_state, lambda _t, v: self._input(inputs.set_cloud, v), CloudState)
        self.bus.subscribe(topics.scheduler_plan, self._on_plan, SchedulerPlan)
        self.bus.subscribe(topics.all_availability(), self._on_availability, decode="text")
        self.bus.subscribe(topics.all_health(), self._on_health, ServiceHealth)
        for thing, topic in (
            ("roof", topics.mcp_roof_command),
            ("mode", topics.mcp_mode_command),
            ("night", topics.mcp_night_command),
        ):
            self.bus.subscribe(topic, lambda _t, text, thing=thing: self._on_command(thing, text), decode="text")
        for thing, topic in (("roof", topics.mcp_remote_roof_command), ("night", topics.mcp_remote_night_command)):
            self.bus.subscribe(topic, lambda _t, text, thing=thing: self._on_remote_command(thing, text), decode="text")
        self.bus.on_connect(lambda: self.controller.broker_changed(True))
        self.controller.restore_operator_state()  # before the first decision and the first state
        self.controller.publish_state()  # the initial state goes out before "online"
        self.controller.start()

    def _on_command(self, thing: str, text: str) -> None:
        """A command, plain (``OPEN``) or JSON with its origin; an unreadable one is answered with a rejection."""
        try:
            command = Command.parse(text)
        except InvalidCommandError as error:
            self.bus.publish_event(Answer(thing, "?", False, [str(error)], request_id=request_id_of(text)).event())
            return
        self.controller.command(thing, command.value, command.origin, command.request_id)

    def _on_remote_command(self, thing: str, text: str) -> None:
        """A command from the central site (its bridge brings it here): closing only, opening stays ours."""
        try:
            command = Command.parse(text)
        except InvalidCommandError as error:
            self.bus.publish_event(Answer(thing, "?", False, [str(error)], request_id=request_id_of(text)).event())
            return
        value = command.value.strip().upper()
        if value not in REMOTE_COMMANDS[thing]:
            allowed = " or ".join(REMOTE_COMMANDS[thing])
            reason = f"from the central site only {allowed}: opening and starting stay a decision of this site"
            answer = Answer(thing, value[:16], False, [reason], origin=command.origin, request_id=command.request_id)
            self.bus.publish_event(answer.event())
            return
        self.controller.command(thing, value, command.origin, command.request_id)

    def _input(self, update: Any, value: Any) -> None:
        update(value)
        self.controller.wake()

    def _on_plan(self, _topic: str, plan: SchedulerPlan) -> None:
        self.plan_requester.on_plan(plan)
        self._input(self.controller.inputs.set_plan, plan)

    def _on_availability(self, topic: str, value: str) -> None:
        service = self.topics.service_of(topic)
        if service is not None and service != self.name:
            self._input(lambda v: self.controller.inputs.set_availability(service, v), value.strip())

    def _on_health(self, topic: str, health: ServiceHealth) -> None:
        service = self.topics.service_of(topic)
        if service is not None and service != self.name:
            self._input(lambda h: self.controller.inputs.set_health(service, h), health)

    def stop(self) -> None:
        # Never a closing half-done: finish it (or, in auto mode, close) first; see Controller.shutdown.
        self.controller.shutdown(self.config.mcp.shutdown_close_timeout)
        self.indi.disconnect()
        if self.ekos is not None:
            self.ekos.close()

    def stop_now(self) -> None:
        self.controller.cut_shutdown_short("a second stop request")

    def health_details(self) -> dict[str, Any]:
        return {"state": str(self.controller.state), "alarm": self.controller.alarm, "indi": self.indi.connected}

    def ha_entities(self) -> list[Entity]:
        return ha.entities(self.topics)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry, which lives in :mod:`obsy_mcp.main` (it starts without this module)."""
    from obsy_mcp.main import main as console_main

    return console_main(argv)
