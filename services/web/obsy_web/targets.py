"""Targets and exposure plans: stored here, published retained for the scheduler.

Every change is followed by a :class:`~obsy.messages.TargetList` of all targets on
``<prefix>/web/targets`` (retained); the bus republishes it after every reconnect.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from obsy import messages
from obsy.filters import same_filter
from obsy.messages import ExposurePlan, FrameType, ImagingAcquired, Target, TargetList, TimeSeries
from obsy_web import catalogue
from obsy_web.db.models import ExposurePlanRecord, TargetRecord

log = logging.getLogger("obsy.web.targets")

#: An exposure plan counts the lights whose exposure is within this fraction of its own.
EXPOSURE_TOLERANCE = 0.01

#: Text the databases store as given (Postgres refuses NUL characters in text).
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
NO_NUL = r"^[^\x00]*$"


class TargetInput(BaseModel):
    """A target as the API and the dashboard accept it.

    Give ``ra_deg``/``dec_deg``, or a ``catalogue_name`` to look them up ("M 31", "NGC 7000",
    "Vega"); ``name`` defaults to the catalogue name.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=NO_CONTROL_CHARACTERS)
    catalogue_name: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_CONTROL_CHARACTERS)
    ra_deg: float | None = Field(default=None, ge=0, lt=360)
    dec_deg: float | None = Field(default=None, ge=-90, le=90)
    priority: int = Field(default=5, ge=0, le=10)
    enabled: bool = True
    exposure_plans: list[ExposurePlan] = Field(default_factory=list, max_length=50)
    constraints: dict[str, Any] = Field(default_factory=dict)
    time_series: TimeSeries | None = Field(
        default=None, description="a variable star: a visit every cadence within a window (the plans' counts unused)"
    )
    notes: str = Field(default="", max_length=2000, pattern=NO_NUL)

    @field_validator("constraints")
    @classmethod
    def _known_constraints(cls, value: dict[str, Any]) -> dict[str, Any]:
        model = getattr(messages, "TargetConstraints", None)  # the scheduler's schema, when present
        if model is not None and value:
            return model.model_validate(value).model_dump(exclude_none=True)
        return value

    @model_validator(mode="after")
    def _position_given(self) -> TargetInput:
        if (self.ra_deg is None) != (self.dec_deg is None):
            raise ValueError("give both ra_deg and dec_deg, or neither (to look the catalogue_name up)")
        if self.ra_deg is None and not self.catalogue_name:
            raise ValueError("give ra_deg and dec_deg, or a catalogue_name to look them up")
        if not self.name and not self.catalogue_name:
            raise ValueError("give a name or a catalogue_name")
        return self


class TargetView(Target):
    """A target as the API returns it: the scheduler's fields and the web's own."""

    catalogue_id: str | None = None
    notes: str = ""
    created_at: datetime
    updated_at: datetime


class TargetError(ValueError):
    """The request cannot be done; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def view(record: TargetRecord) -> TargetView:
    return TargetView.model_validate(record, from_attributes=True)


def name_key(name: str | None) -> str:
    """A target or filter name compared without case or blanks: "M 31", "m31" and " M31 " are one."""
    return re.sub(r"\s+", "", name or "").casefold()


#: (target key, frame type) -> [(filter key, exposure s, count)]
Counts = dict[tuple[str, str], list[tuple[str, float, int]]]


def counted_for(plan: ExposurePlanRecord, counts: Counts, key: str) -> int:
    """Frames of target ``key`` that match a plan: of its frame type; lights and flats of its filter
    (or a synonym of it, as the scheduler maps it onto the wheel: a plan's "L" counts the frames of
    the wheel's "Luminance"; :mod:`obsy.filters`); lights, flats and darks of its exposure (within
    1 %). A bias matches by type alone (cameras report a bias's exposure as they like: 0, their
    shortest, or the one asked), a dark whatever filter the wheel held."""
    frame_type = plan.frame_type or FrameType.LIGHT.value
    return sum(
        n
        for frame_filter, exposure, n in counts.get((key, frame_type), [])
        if (frame_type in (FrameType.DARK.value, FrameType.BIAS.value) or same_filter(frame_filter, plan.filter))
        and (
            frame_type == FrameType.BIAS.value
            or abs(exposure - plan.exposure_s) <= EXPOSURE_TOLERANCE * plan.exposure_s
        )
    )


class TargetStore:
    def __init__(self, sessions: sessionmaker[Session], publish: Callable[[TargetList], None]) -> None:
        self.sessions = sessions
        self.publish = publish
        #: The latest counts from the imaging service, per (target key, frame type).
        self._counts: Counts = {}
        self._counts_lock = threading.Lock()

    def list(self) -> list[TargetView]:
        with self.sessions() as db:
            query = (
                select(TargetRecord)
                .options(selectinload(TargetRecord.exposure_plans))
                .order_by(TargetRecord.priority.desc(), TargetRecord.name)
            )
            return [view(record) for record in db.scalars(query)]

    def get(self, target_id: str) -> TargetView:
        with self.sessions() as db:
            return view(self._record(db, target_id))

    def create(self, data: TargetInput) -> TargetView:
        now = datetime.now(UTC)
        with self.sessions.begin() as db:
            record = TargetRecord(id=uuid.uuid4().hex[:12], created_at=now)
            self._fill(db, record, data, now)
            self._count_acquired(record)
            db.add(record)
            db.flush()
            result = view(record)
        self.publish_all()
        return result

    def update(self, target_id: str, data: TargetInput) -> TargetView:
        now = datetime.now(UTC)
        with self.sessions.begin() as db:
            record = self._record(db, target_id)
            self._fill(db, record, data, now)
            self._count_acquired(record)
            db.flush()
            result = view(record)
        self.publish_all()
        return result

    def delete(self, target_id: str) -> None:
        with self.sessions.begin() as db:
            db.delete(self._record(db, target_id))
        self.publish_all()

    def apply_acquired(self, summary: ImagingAcquired) -> int:
        """Raise each matching plan's ``acquired`` to the frames counted; republish on a change.

        The rule: ``acquired = max(value kept, accepted lights counted)``; a hand-edited value
        above the count stays, one below it is raised. Returns how many plans changed.
        """
        counts: Counts = {}
        for row in summary.lights:
            counts.setdefault((name_key(row.target), row.frame_type.value), []).append(
                (name_key(row.filter), row.exposure_s, row.accepted)
            )
        with self._counts_lock:
            self._counts = counts
        changed = 0
        with self.sessions.begin() as db:
            records = db.scalars(select(TargetRecord).options(selectinload(TargetRecord.exposure_plans))).all()
            known = {name_key(record.name) for record in records}
            for record in records:
                changed += self._count_acquired(record)
        unknown = sorted({row.target for row in summary.lights if name_key(row.target) not in known})
        if unknown:
            log.info(
                "accepted lights of targets not in the target list, not counted: %s",
                ", ".join(unknown),
                extra={"event": "acquired_unknown_target"},
            )
        if changed:
            log.info("acquired counts updated in %d exposure plans", changed, extra={"event": "acquired_counted"})
            self.publish_all()
        return changed

    def _count_acquired(self, record: TargetRecord) -> int:
        """Apply the latest counts to one target's plans; returns how many plans changed."""
        with self._counts_lock:
            counts = self._counts
        key = name_key(record.name)
        changed = 0
        for plan in record.exposure_plans:
            counted = counted_for(plan, counts, key)
            if counted > plan.acquired:
                plan.acquired = counted
                changed += 1
        return changed

    def publish_all(self) -> None:
        targets = [Target.model_validate(t.model_dump()) for t in self.list()]
        self.publish(TargetList(targets=targets))

    @staticmethod
    def _record(db: Session, target_id: str) -> TargetRecord:
        record = db.get(TargetRecord, target_id, options=[selectinload(TargetRecord.exposure_plans)])
        if record is None:
            raise TargetError(f"no target with id {target_id!r}", status=404)
        return record

    @staticmethod
    def _fill(db: Session, record: TargetRecord, data: TargetInput, now: datetime) -> None:
        catalogue_id = None
        ra, dec = data.ra_deg, data.dec_deg
        if data.catalogue_name:
            entry = catalogue.lookup(data.catalogue_name)
            if entry is None:
                raise TargetError(f"{data.catalogue_name!r} is not in the catalogues (OpenNGC, bright stars)")
            catalogue_id = entry.catalogue_id
            if ra is None:
                ra, dec = entry.ra_deg, entry.dec_deg
        name = (data.name or data.catalogue_name or "").strip()
        clash = db.scalar(select(TargetRecord.id).where(TargetRecord.name == name, TargetRecord.id != record.id))
        if clash is not None:
            raise TargetError(f"a target named {name!r} exists already (id {clash})", status=409)
        record.name = name
        record.catalogue_id = catalogue_id
        record.ra_deg = float(ra)  # type: ignore[arg-type]
        record.dec_deg = float(dec)  # type: ignore[arg-type]
        record.priority = data.priority
        record.enabled = data.enabled
        record.constraints = data.constraints
        record.time_series = data.time_series.model_dump(mode="json") if data.time_series is not None else None
        record.notes = data.notes
        record.updated_at = now
        record.exposure_plans = [
            ExposurePlanRecord(position=i, **p.model_dump(mode="json")) for i, p in enumerate(data.exposure_plans)
        ]
