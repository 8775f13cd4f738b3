"""Commands to the MCP (roof, mode, night), for operators; the reply is the MCP's answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from obsy.messages import Mode, NightAction, RoofAction
from obsy_web.api.security import get_context, operator
from obsy_web.auth.accounts import Principal
from obsy_web.commands import NoAnswerError
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
        answer = context.commands.send(thing, value, who.username)
    except NoAnswerError as exc:
        raise HTTPException(504, str(exc)) from None
    kind = answer.payload.get("kind") if isinstance(answer.payload, dict) else None
    accepted = {"command_accepted": True, "command_rejected": False}.get(kind or "")
    return CommandReply(command=thing, value=value, accepted=accepted, answer_topic=answer.topic, answer=answer.payload)


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
