"""The web's one CommandGateway against services that answer on a real broker: the answer repeating the
request id is taken (another sender's is not), a rejection with its reasons, a result state awaited after
an acceptance, an older weather service's answer, and silence as NoAnswerError."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from obsy.bus import Bus
from obsy.messages import (
    CommandAnswer,
    CommandOrigin,
    Event,
    EventKind,
    ImagingMastersCommand,
    ImagingMastersState,
    OriginKind,
    WeatherSimulationAction,
    WeatherSimulationCommand,
)
from obsy_web.commands import CommandGateway, NoAnswerError
from tests.support.mosquitto import MosquittoBroker

pytestmark = [pytest.mark.integration]

ADA = CommandOrigin(kind=OriginKind.WEB, user="ada", role="operator")


@pytest.fixture
def buses(mosquitto: MosquittoBroker) -> Iterator[Callable[[str], Bus]]:
    started: list[Bus] = []

    def start(name: str, subscribe: Callable[[Bus], None] = lambda _bus: None) -> Bus:
        bus = Bus(mosquitto.broker_config(), name)
        subscribe(bus)
        assert bus.start(wait=10)
        started.append(bus)
        return bus

    yield start
    for bus in reversed(started):
        bus.stop()


def _service(buses: Callable[..., Bus], name: str, topic: str, model: type, answer: Callable[[Bus, Any], None]) -> Bus:
    return buses(name, lambda bus: bus.subscribe(topic, lambda _t, command: answer(bus, command), model))


def test_the_answer_repeating_the_request_id_is_taken_and_another_senders_is_not(buses) -> None:
    def answer(bus: Bus, command: WeatherSimulationCommand) -> None:
        # Another sender's answer first (a different request id), then this one's.
        other = CommandAnswer.of("simulate", "rain", accepted=False, origin=None, request_id="someone-else")
        bus.publish_event(other.as_event("weather"))
        mine = CommandAnswer.of(
            "simulate", "rain", accepted=True, origin=command.origin, request_id=command.request_id, values={"P": 1}
        )
        bus.publish_event(mine.as_event("weather"))

    _service(buses, "weather", "obsy/weather/simulate/set", WeatherSimulationCommand, answer)
    gateway = CommandGateway(buses("web"), 10, service="weather", things=("simulate",))
    command = WeatherSimulationCommand(action=WeatherSimulationAction.RAIN)
    reply = gateway.send("simulate", command, ADA, what="rain")

    assert reply.topic == "weather/events" and reply.accepted is True
    data = reply.payload["data"]
    assert data["values"] == {"P": 1} and data["origin"] == ADA.as_data()
    assert len(data["request_id"]) == 16 and data["request_id"] != "someone-else"
    with pytest.raises(ValueError, match="unknown command 'roof'"):
        gateway.send("roof", "OPEN", ADA)


def test_a_rejection_ends_the_wait_with_its_reasons_even_where_a_result_state_is_awaited(buses) -> None:
    def reject(bus: Bus, command: ImagingMastersCommand) -> None:
        answer = CommandAnswer.of(
            "masters", "build", accepted=False, origin=command.origin, request_id=command.request_id, reasons=["busy"]
        )
        bus.publish_event(answer.as_event("imaging"))

    _service(buses, "imaging", "obsy/imaging/masters/set", ImagingMastersCommand, reject)
    gateway = CommandGateway(buses("web"), 10, service="imaging", things=("masters",), result_state="masters")
    reply = gateway.send("masters", ImagingMastersCommand(), ADA)
    assert reply.accepted is False and reply.reasons == ["busy"]
    assert reply.payload["kind"] == EventKind.COMMAND_REJECTED


def test_an_acceptance_waits_for_the_result_state_repeating_the_request_id(buses) -> None:
    def accept_then_run(bus: Bus, command: ImagingMastersCommand) -> None:
        accepted = CommandAnswer.of("masters", "build", accepted=True, origin=None, request_id=command.request_id)
        bus.publish_event(accepted.as_event("imaging"))
        earlier = ImagingMastersState(status="done", request_id="an-earlier-command")
        bus.publish("obsy/imaging/masters/state", earlier, retain=True)
        state = ImagingMastersState(status="running", request_id=command.request_id, origin=command.origin)
        bus.publish("obsy/imaging/masters/state", state, retain=True)

    _service(buses, "imaging", "obsy/imaging/masters/set", ImagingMastersCommand, accept_then_run)
    gateway = CommandGateway(buses("web"), 10, service="imaging", things=("masters",), result_state="masters")
    reply = gateway.send("masters", ImagingMastersCommand(min_frames=3), ADA)
    assert reply.topic == "imaging/masters/state" and reply.accepted is None
    assert reply.payload["status"] == "running" and reply.payload["origin"]["user"] == "ada"


def test_an_older_weather_services_answer_is_understood(buses) -> None:
    def refuse(bus: Bus, command: WeatherSimulationCommand) -> None:
        data = {"request_id": command.request_id, "reason": "simulated weather is not allowed here"}
        bus.publish_event(Event(service="weather", kind="simulation_refused", level="warning", data=data))

    _service(buses, "weather", "obsy/weather/simulate/set", WeatherSimulationCommand, refuse)
    gateway = CommandGateway(buses("web"), 10, service="weather", things=("simulate",))
    reply = gateway.send("simulate", WeatherSimulationCommand(action=WeatherSimulationAction.CLEAR), ADA)
    assert reply.accepted is False and reply.reasons == ["simulated weather is not allowed here"]


def test_silence_is_no_answer_error_naming_the_service(buses) -> None:
    gateway = CommandGateway(buses("web"), 1.0, service="imaging", things=("masters",), result_state="masters")
    with pytest.raises(NoAnswerError, match="the imaging service did not answer the masters command within 1 s"):
        gateway.send("masters", ImagingMastersCommand(), ADA)
