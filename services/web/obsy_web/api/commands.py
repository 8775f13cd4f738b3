"""Commands to the MCP (roof, mode, night), for operators; the reply is the MCP's answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from obsy.messages import (
    Mode,
    NightAction,
    RoofAction,
    SimulatedCloudKind,
    WeatherSimulationAction,
    WeatherSimulationCommand,
    validation_problems,
)
from obsy_web.api.security import get_context, operator
from obsy_web.auth.accounts import Principal
from obsy_web.commands import NoAnswerError, web_origin
from obsy_web.context import WebContext

router = APIRouter(prefix="/commands", tags=["commands"])


class RoofCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: RoofAction


class ModeCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode


class NightCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: NightAction


class CommandReply(BaseModel):
    command: str
    value: str
    accepted: bool | None = Field(description="the MCP's verdict; null when it only echoed its state")
    answer_topic: str
    answer: Any


def _send(context: WebContext, thing: str, value: str, who: Principal) -> CommandReply:
    try:
        answer = context.commands.send(thing, value, web_origin(who.username, who.role.value))
    except NoAnswerError as exc:
        raise HTTPException(504, str(exc)) from None
    return CommandReply(
        command=thing, value=value, accepted=answer.accepted, answer_topic=answer.topic, answer=answer.payload
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {504: {"description": "the MCP did not answer in time"}}


@router.post("/roof", response_model=CommandReply, responses=_RESPONSES, summary="Open, close or stop the roof")
def roof(
    command: RoofCommand, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> CommandReply:
    return _send(context, "roof", command.action.value, who)


@router.post("/mode", response_model=CommandReply, responses=_RESPONSES, summary="Set the MCP's mode")
def mode(
    command: ModeCommand, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> CommandReply:
    return _send(context, "mode", command.mode.value, who)


@router.post("/night", response_model=CommandReply, responses=_RESPONSES, summary="Start or abort the night")
def night(
    command: NightCommand, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> CommandReply:
    return _send(context, "night", command.action.value, who)


class WeatherSimulationRequest(BaseModel):
    """Change the weather of INDI's weather simulator, or the sky simulator's clouds (demonstrations).

    Checked as the bus command is.
    """

    model_config = ConfigDict(extra="forbid")
    action: WeatherSimulationAction
    wind_speed: float | None = Field(default=None, description="km/h, 0-100; only for wind")
    cloud_kind: SimulatedCloudKind | None = Field(
        default=None, description="clouds: clear, scattered, bank, veil or overcast (scattered if only cover)"
    )
    cover: float | None = Field(default=None, description="clouds: percent 0-100; only for scattered clouds")

    @model_validator(mode="after")
    def _valid_command(self) -> WeatherSimulationRequest:
        if self.action is not WeatherSimulationAction.WIND and self.wind_speed is not None:
            raise ValueError(f"wind_speed belongs to the wind action, not {self.action.value}")
        try:
            self.command()
        except ValidationError as error:
            raise ValueError(validation_problems(error, whole="command")) from None
        return self

    def command(self) -> WeatherSimulationCommand:
        return WeatherSimulationCommand(
            action=self.action, wind_speed=self.wind_speed, cloud_kind=self.cloud_kind, cover=self.cover
        )


class WeatherSimulationReply(BaseModel):
    applied: bool
    message: str
    values: dict[str, float | str | None] = Field(
        default_factory=dict,
        description="what was set: the weather simulator's WEATHER_CONTROL values, or the clouds' kind and cover",
    )


@router.post(
    "/weather/simulate",
    response_model=WeatherSimulationReply,
    responses={
        409: {"description": "simulation is off in the configuration, or the weather service refused (no simulator)"},
        504: {"description": "the weather service did not answer in time"},
    },
    summary="Make it rain, clear or blow on the weather simulator, or cloudy on the sky simulator",
)
def simulate_weather(
    request: WeatherSimulationRequest, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> WeatherSimulationReply:
    if context.simulation is None:
        raise HTTPException(503, "this web service sends no weather simulation commands")
    if not context.config.setting_of("weather", "allow_simulation", False):
        # The same shared config tells the weather service to refuse: say so without a round trip.
        raise HTTPException(409, "weather simulation is off (weather.allow_simulation is false in the configuration)")
    origin = web_origin(who.username, who.role.value)
    command = request.command().model_copy(update={"user": origin.user})
    what = command.action.value + (f" {command.wind_speed:g} km/h" if command.wind_speed is not None else "")
    what += f" {command.cloud_kind.value}" if command.cloud_kind is not None else ""
    what += f" {command.cover:g} %" if command.cover is not None else ""
    try:
        answer = context.simulation.send("simulate", command, origin, what=what)
    except NoAnswerError as exc:
        raise HTTPException(504, str(exc)) from None
    message = str(answer.payload.get("message", "")) if isinstance(answer.payload, dict) else ""
    if answer.accepted is not True:
        raise HTTPException(409, message or "the weather service refused the simulate command")
    values = (answer.payload.get("data") or {}).get("values") or {}
    return WeatherSimulationReply(applied=True, message=message, values=values)
