"""Which bus messages are stored, and as what rows.

:func:`rows_for` turns one message into rows for the time-series tables. A payload that
does not match its model raises :class:`InvalidMessageError` naming the topic and the problem;
topics that are not stored (health, commands, the allsky JPEG, ...) give no rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Table

from obsy.messages import (
    AllskyFrame,
    AllskyStreak,
    CloudState,
    Event,
    ImagingCalibrated,
    ImagingFrame,
    ImagingLiveStack,
    ImagingMaster,
    ImagingNightStack,
    ImagingPhotometry,
    ImagingProjectStack,
    ImagingTransit,
    McpState,
    SafetyVerdict,
    SchedulerPlan,
    WeatherState,
    validation_problems,
)
from obsy.topics import AVAILABILITY_VALUES, Topics
from obsy_web.db import models

M = TypeVar("M", bound=BaseModel)


class InvalidMessageError(ValueError):
    """A message on a stored topic whose payload cannot be stored."""


def message_digest(topic: str, payload: bytes) -> str:
    """SHA-256 of topic and payload: what makes a message the same message when it comes again."""
    return hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()


class OversizeMessageError(InvalidMessageError):
    """A message on a stored topic larger than ``web.ingest_max_payload``: it is not stored."""


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    received_at: datetime
    #: The broker's packet id (0: QoS 0 or not from the broker) and DUP flag: see IngestReceipt.
    packet_id: int = 0
    resent: bool = False
    #: Called once the message is stored (or judged not worth storing): the broker may forget it.
    acknowledge: Callable[[], None] | None = None

    @cached_property
    def digest(self) -> str:
        return message_digest(self.topic, self.payload)


@dataclass(frozen=True)
class Row:
    table: Table
    values: dict[str, Any]
    #: Rows with a change key are stored only when their value differs from the last one stored.
    change_key: tuple[str, ...] | None = None
    change_value: Any = None


def _parse(model: type[M], message: Incoming) -> M:
    try:
        return model.model_validate_json(message.payload)
    except ValidationError as exc:
        raise InvalidMessageError(
            f"{message.topic}: does not match {model.__name__}: {validation_problems(exc)}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidMessageError(f"{message.topic}: does not match {model.__name__}: {exc}") from None


def _number(value: float | bool | None) -> float | None:
    return None if value is None else float(value)


def _weather(message: Incoming) -> list[Row]:
    state = _parse(WeatherState, message)
    table = models.WeatherReading.__table__
    return [
        Row(
            table,
            {
                "time": reading.measured_at or state.timestamp,
                "quantity": quantity[:64],
                "value": _number(reading.value),
                "unit": reading.unit[:32],
                "source": reading.source[:64],
            },
        )
        for quantity, reading in state.readings.items()
    ]


def _safety(message: Incoming) -> list[Row]:
    verdict = _parse(SafetyVerdict, message)
    reasons = [reason.model_dump(mode="json") for reason in verdict.reasons]
    values = {"time": verdict.timestamp, "safe": verdict.safe, "since": verdict.since, "reasons": reasons}
    return [Row(models.SafetyVerdictRecord.__table__, values, ("safety",), (verdict.safe, json.dumps(reasons)))]


def _clouds(message: Incoming) -> list[Row]:
    state = _parse(CloudState, message)
    values = state.model_dump(include={"cloud_cover", "label", "confidence", "clear", "methods", "frame_id"})
    values["time"] = state.timestamp
    return [Row(models.CloudResult.__table__, values)]


def _allsky_frame(message: Incoming) -> list[Row]:
    frame = _parse(AllskyFrame, message)
    values = frame.model_dump(exclude={"schema_version", "timestamp"})
    values["time"] = frame.timestamp
    return [Row(models.AllskyFrameRecord.__table__, values)]


def _allsky_streak(message: Incoming) -> list[Row]:
    streak = _parse(AllskyStreak, message)
    values = streak.model_dump(include={"night", "frame_id", "kind", "snr", "length_px", "length_deg", "crop_url"})
    values.update(night=streak.night[:10], frame_id=streak.frame_id[:128], time=streak.timestamp)
    values["fingerprint"] = message.digest
    values["data"] = streak.model_dump(mode="json")
    return [Row(models.AllskyStreakRecord.__table__, values)]


def _cut(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


def _stack_values(stack: ImagingLiveStack | ImagingNightStack, columns: set[str]) -> dict:
    """A stack message's row: its own ``columns``, when, which night, target and filter, and the whole message."""
    values = stack.model_dump(include=columns)
    values.update(
        time=stack.timestamp,
        night=stack.night[:10],
        target=_cut(stack.target, 200),
        filter=_cut(stack.filter, 100),
        data=stack.model_dump(mode="json"),
    )
    return values


def _live_stack(message: Incoming) -> list[Row]:
    stack = _parse(ImagingLiveStack, message)
    values = _stack_values(stack, {"stack_id", "frames", "integration_s", "left_out", "preview"})
    return [Row(models.LiveStackState.__table__, values)]


def _imaging_frame(message: Incoming) -> list[Row]:
    frame = _parse(ImagingFrame, message)
    values = {
        "time": frame.timestamp,
        "frame_id": frame.frame_id,
        "night": frame.night[:10],
        "frame_type": frame.frame_type[:16],
        "target": _cut(frame.target, 200),
        "filter": _cut(frame.filter, 100),
        "exposure_s": frame.exposure_s,
        "accepted": frame.accepted,
        "rejected_because": [reason[:500] for reason in frame.rejected_because[:20]],
        "date_obs": frame.date_obs,
        "fwhm_px": frame.fwhm_px,
        "background": frame.background,
        "data": frame.model_dump(mode="json"),
    }
    return [Row(models.ImagingFrameRecord.__table__, values)]


def _night_stack(message: Incoming) -> list[Row]:
    stack = _parse(ImagingNightStack, message)
    values = _stack_values(stack, {"stack_id", "live_stack_id", "frames", "integration_s", "path"})
    return [Row(models.NightStackRecord.__table__, values)]


def _project_stack(message: Incoming) -> list[Row]:
    stack = _parse(ImagingProjectStack, message)
    values = stack.model_dump(include={"stack_id", "frames", "integration_s", "path"})
    values.update(
        time=stack.timestamp,
        target=stack.target[:200],
        filter=_cut(stack.filter, 100),
        data=stack.model_dump(mode="json"),
    )
    return [Row(models.ProjectStackRecord.__table__, values)]


def _master(message: Incoming) -> list[Row]:
    master = _parse(ImagingMaster, message)
    values = master.model_dump(include={"frames", "exposure_s", "temperature_c", "gain"})
    values.update(
        time=master.timestamp,
        master_id=master.master_id[:128],
        kind=master.kind[:16],
        binning=_cut(master.binning, 16),
        filter=_cut(master.filter, 100),
        replaces=_cut(master.replaces, 128),
        data=master.model_dump(mode="json"),
    )
    return [Row(models.CalibrationMasterRecord.__table__, values)]


def _calibrated(message: Incoming) -> list[Row]:
    light = _parse(ImagingCalibrated, message)
    values = {
        "time": light.timestamp,
        "fingerprint": message.digest,
        "night": light.night[:10],
        "frame_id": light.frame_id,
        "target": _cut(light.target, 200),
        "filter": _cut(light.filter, 100),
        "data": light.model_dump(mode="json"),
    }
    return [Row(models.CalibratedLightRecord.__table__, values)]


def _photometry(message: Incoming) -> list[Row]:
    point = _parse(ImagingPhotometry, message)
    values = point.model_dump(include={"frame_id", "jd", "magnitude", "error", "check_magnitude", "check_residual"})
    values.update(
        time=point.timestamp,
        fingerprint=message.digest,
        night=point.night[:10],
        target=point.target[:200],
        filter=_cut(point.filter, 100),
        band=_cut(point.band, 16),
        report=point.report,
        data=point.model_dump(mode="json"),
    )
    return [Row(models.PhotometryPoint.__table__, values)]


def _transit(message: Incoming) -> list[Row]:
    fit = _parse(ImagingTransit, message)
    values = {
        "time": fit.timestamp,
        "fingerprint": message.digest,
        "night": fit.night[:10],
        "planet": fit.planet[:200],
        "status": fit.status,
        "tc": fit.tc,
        "report": fit.report,
        "plot": fit.plot,
        "points": fit.points,
        "data": fit.model_dump(mode="json"),
    }
    return [Row(models.TransitFitRecord.__table__, values)]


def _mcp_state(message: Incoming) -> list[Row]:
    state = _parse(McpState, message)
    values = state.model_dump(
        mode="json", include={"state", "reason", "mode", "roof", "safe", "alarm", "unsafe_reasons"}
    )
    values["time"] = state.timestamp
    return [Row(models.McpStateRecord.__table__, values)]


def _event(message: Incoming) -> list[Row]:
    event = _parse(Event, message)
    values = event.model_dump(mode="json", include={"service", "kind", "level", "message", "data"})
    values["service"] = values["service"][:64]
    values["kind"] = values["kind"][:64]
    values["time"] = event.timestamp
    values["fingerprint"] = message.digest
    return [Row(models.EventRecord.__table__, values)]


def _plan(message: Incoming) -> list[Row]:
    plan = _parse(SchedulerPlan, message)
    values = {"time": plan.timestamp, "night": plan.night[:10], "plan": plan.model_dump(mode="json")}
    return [Row(models.SchedulerPlanRecord.__table__, values)]


def _availability(message: Incoming, service: str) -> list[Row]:
    value = message.payload.decode("utf-8", errors="replace").strip()
    if value not in AVAILABILITY_VALUES:
        raise InvalidMessageError(f"{message.topic}: availability must be one of {', '.join(AVAILABILITY_VALUES)}")
    values = {"time": message.received_at, "service": service[:64], "availability": value}
    return [Row(models.AvailabilityChange.__table__, values, ("availability", service), value)]


class Router:
    """Maps the topics of one prefix (one site) to the functions that store them.

    Every row gets the router's ``site``, and every change key starts with it: each site's
    verdict and availability changes are detected apart.
    """

    def __init__(self, topics: Topics, max_payload: int = 1024 * 1024, site: str = models.DEFAULT_SITE) -> None:
        self.topics = topics
        self.site = site
        self.max_payload = max_payload
        self._exact = {
            topics.weather_state: _weather,
            topics.weather_safety: _safety,
            topics.clouddetect_state: _clouds,
            topics.allsky_frames: _allsky_frame,
            topics.allsky_streaks: _allsky_streak,
            topics.imaging_frames: _imaging_frame,
            topics.imaging_live_stack_state: _live_stack,
            topics.imaging_masters: _master,
            topics.imaging_calibrated: _calibrated,
            topics.imaging_photometry: _photometry,
            topics.imaging_transits: _transit,
            topics.imaging_night_stacks: _night_stack,
            topics.imaging_project_stacks: _project_stack,
            topics.mcp_state: _mcp_state,
            topics.scheduler_plan: _plan,
        }

    def rows_for(self, message: Incoming) -> list[Row]:
        """The rows to store for ``message``; raises :class:`InvalidMessageError` (or its oversize kind)."""
        if not message.payload:
            return []  # a cleared retained topic
        store = self._store_function(message.topic)
        if store is None:
            return []
        if len(message.payload) > self.max_payload:
            raise OversizeMessageError(
                f"{message.topic}: {len(message.payload)} bytes is over the {self.max_payload}-byte limit "
                "(web.ingest_max_payload)"
            )
        rows = store(message)
        return [
            Row(row.table, {**row.values, "site": self.site}, (self.site, *row.change_key), row.change_value)
            if row.change_key is not None
            else Row(row.table, {**row.values, "site": self.site})
            for row in rows
        ]

    def _store_function(self, topic: str) -> Callable[[Incoming], list[Row]] | None:
        """How messages on ``topic`` are stored; None for topics that are not (health, commands, ...)."""
        exact = self._exact.get(topic)
        if exact is not None:
            return exact
        head = self.topics.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) == 2 and parts[1] == "events":
            return _event
        if len(parts) == 2 and parts[1] == "availability":
            return lambda message: _availability(message, parts[0])
        return None
