"""Every table of the web service.

Time series (weather readings, safety verdicts, cloud results, MCP states, availability,
events, allsky frames, scheduler plans) are written by the ingestor from the bus. Targets,
users, sessions and API tokens are owned here and changed through the API.

The schema is created and changed only by the Alembic migrations in
``obsy_web/db/migrations``; a test checks that these models and the migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from obsy_web.db.types import UTCDateTime

Json = JSON().with_variant(JSONB(), "postgresql")
# BIGINT identity on Postgres, INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


#: The site of rows stored without one: the database's default is this site's id when the
#: migration that added the ``site`` columns ran (``site.id``, else made from the prefix).
DEFAULT_SITE = "obsy"


def site_column() -> Mapped[str]:
    """The site a row belongs to (``site.id`` here, ``web.sites`` for bridged ones): part of each unique key."""
    return mapped_column(String(64), server_default=DEFAULT_SITE)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: Json, list[Any]: Json}


# --- time series from the bus ---------------------------------------------------------


class WeatherReading(Base):
    """One quantity at one time; a reading repeated in later states is stored once."""

    __tablename__ = "weather_readings"
    __table_args__ = (
        UniqueConstraint("site", "quantity", "source", "time", name="uq_weather_readings_site_quantity_source_time"),
        Index("ix_weather_readings_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    quantity: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32), default="")
    source: Mapped[str] = mapped_column(String(64), default="")


class SafetyVerdictRecord(Base):
    """A change of the weather safety verdict (repeats of the same verdict are not stored)."""

    __tablename__ = "safety_verdicts"
    __table_args__ = (UniqueConstraint("site", "time", name="uq_safety_verdicts_site_time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    safe: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime | None]
    reasons: Mapped[list[Any]]


class CloudResult(Base):
    __tablename__ = "cloud_results"
    __table_args__ = (UniqueConstraint("site", "time", name="uq_cloud_results_site_time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    cloud_cover: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(64), default="unknown")
    confidence: Mapped[float | None] = mapped_column(Float)
    clear: Mapped[bool | None] = mapped_column(Boolean)
    methods: Mapped[list[Any]]
    frame_id: Mapped[str | None] = mapped_column(String(128))


class AllskyFrameRecord(Base):
    __tablename__ = "allsky_frames"
    __table_args__ = (
        UniqueConstraint("site", "frame_id", name="uq_allsky_frames_site_frame_id"),
        Index("ix_allsky_frames_night_time", "night", "time"),
        Index("ix_allsky_frames_time", "time"),
        Index("ix_allsky_frames_site_time", "site", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    frame_id: Mapped[str] = mapped_column(String(128))
    time: Mapped[datetime]
    night: Mapped[str] = mapped_column(String(10))
    exposure_s: Mapped[float] = mapped_column(Float)
    gain: Mapped[float | None] = mapped_column(Float)
    stars: Mapped[int | None] = mapped_column(Integer)
    sqm: Mapped[float | None] = mapped_column(Float)
    sun_altitude: Mapped[float | None] = mapped_column(Float)
    moon_altitude: Mapped[float | None] = mapped_column(Float)
    moon_phase: Mapped[float | None] = mapped_column(Float)
    url: Mapped[str] = mapped_column(Text)
    fits_url: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)


class AllskyStreakRecord(Base):
    """A meteor or satellite track the allsky service found (``allsky/streaks``); its crop is a file."""

    __tablename__ = "allsky_streaks"
    __table_args__ = (
        Index("ix_allsky_streaks_night_time", "night", "time"),
        Index("ix_allsky_streaks_time", "time"),
        Index("ix_allsky_streaks_site_night", "site", "night"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    #: SHA-256 of topic and payload: a message the broker delivers twice (QoS 1) is stored once.
    #: The topic carries the site's prefix, so two sites never share one.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[datetime]
    night: Mapped[str] = mapped_column(String(10))
    frame_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    snr: Mapped[float] = mapped_column(Float)
    length_px: Mapped[float] = mapped_column(Float)
    length_deg: Mapped[float | None] = mapped_column(Float)
    crop_url: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]]  # the whole message (ends in pixels and alt/az, profile figures)


class LiveStackState(Base):
    """A live stack after a frame was folded in (``imaging/livestack/state``): one row per fold."""

    __tablename__ = "live_stack_states"
    __table_args__ = (
        UniqueConstraint("site", "stack_id", "time", name="uq_live_stack_states_site_stack_id_time"),
        Index("ix_live_stack_states_night_time", "night", "time"),
        Index("ix_live_stack_states_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    stack_id: Mapped[int] = mapped_column(BigInteger)
    night: Mapped[str] = mapped_column(String(10))
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    frames: Mapped[int] = mapped_column(Integer)
    integration_s: Mapped[float] = mapped_column(Float)
    left_out: Mapped[int] = mapped_column(Integer)
    preview: Mapped[str] = mapped_column(Text)  # the JPEG, relative to the imaging repository's root
    data: Mapped[dict[str, Any]]  # the whole message


class ImagingFrameRecord(Base):
    """A frame the imaging service registered (``imaging/frames``): its night, target, filter, exposure
    and, for a graded light, accepted or rejected and why. What the end-of-night summary counts."""

    __tablename__ = "imaging_frames"
    __table_args__ = (
        UniqueConstraint("site", "frame_id", name="uq_imaging_frames_site_frame_id"),
        Index("ix_imaging_frames_site_night", "site", "night"),
        Index("ix_imaging_frames_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    frame_id: Mapped[int] = mapped_column(BigInteger)  # the imaging service's id: one row per frame
    time: Mapped[datetime]
    night: Mapped[str] = mapped_column(String(10))
    frame_type: Mapped[str] = mapped_column(String(16))
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    exposure_s: Mapped[float | None] = mapped_column(Float)
    accepted: Mapped[bool | None] = mapped_column(Boolean)  # None: not graded (calibration, grading off)
    rejected_because: Mapped[list[Any]]
    # Web migration 0009 (the target page's charts and frame grid); null in rows stored before it:
    date_obs: Mapped[datetime | None]  # exposure start
    fwhm_px: Mapped[float | None] = mapped_column(Float)
    background: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any] | None]  # the whole message (path, stars, SNR, noise, eccentricity...)


class NightStackRecord(Base):
    """A night's stack of record (``imaging/nightstacks``): a live stack stacked again with rejection once
    the night was over. Kept for ever, as the masters are."""

    __tablename__ = "night_stacks"
    __table_args__ = (
        UniqueConstraint("site", "stack_id", "time", name="uq_night_stacks_site_stack_id_time"),
        Index("ix_night_stacks_night", "night"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    stack_id: Mapped[int] = mapped_column(BigInteger)
    live_stack_id: Mapped[int] = mapped_column(BigInteger)
    night: Mapped[str] = mapped_column(String(10))
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    frames: Mapped[int] = mapped_column(Integer)
    integration_s: Mapped[float] = mapped_column(Float)
    path: Mapped[str] = mapped_column(Text)  # the FITS, relative to the imaging repository's root
    data: Mapped[dict[str, Any]]  # the whole message (rejection, rejected fraction, missing, seconds)


class ProjectStackRecord(Base):
    """A target's project stack (``imaging/projectstacks``): one filter's accepted, calibrated lights of
    every night registered onto one reference and stacked. Kept for ever, as night stacks are; built
    again, it has a new row (the newest is the one shown)."""

    __tablename__ = "project_stacks"
    __table_args__ = (
        UniqueConstraint("site", "stack_id", "time", name="uq_project_stacks_site_stack_id_time"),
        Index("ix_project_stacks_target", "target"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    stack_id: Mapped[int] = mapped_column(BigInteger)
    target: Mapped[str] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    frames: Mapped[int] = mapped_column(Integer)
    integration_s: Mapped[float] = mapped_column(Float)
    path: Mapped[str] = mapped_column(Text)  # the FITS, relative to the imaging repository's root
    data: Mapped[dict[str, Any]]  # the whole message (nights, left out, rejection, sample, thumbnail, seconds)


class CalibrationMasterRecord(Base):
    """A master the imaging service built into its calibration library (``imaging/masters``)."""

    __tablename__ = "calibration_masters"
    __table_args__ = (
        UniqueConstraint("site", "master_id", name="uq_calibration_masters_site_master_id"),
        Index("ix_calibration_masters_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    master_id: Mapped[str] = mapped_column(String(128))
    time: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    frames: Mapped[int] = mapped_column(Integer)
    exposure_s: Mapped[float] = mapped_column(Float)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    gain: Mapped[float | None] = mapped_column(Float)
    binning: Mapped[str | None] = mapped_column(String(16))
    filter: Mapped[str | None] = mapped_column(String(100))
    replaces: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]]  # the whole message


class CalibratedLightRecord(Base):
    """A light the imaging service calibrated (``imaging/calibrated``): which masters, and why."""

    __tablename__ = "calibrated_lights"
    __table_args__ = (
        Index("ix_calibrated_lights_night_time", "night", "time"),
        Index("ix_calibrated_lights_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    #: SHA-256 of topic and payload: a message the broker delivers twice (QoS 1) is stored once.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[datetime]
    night: Mapped[str] = mapped_column(String(10))
    frame_id: Mapped[int] = mapped_column(BigInteger)
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]]  # the whole message: light, masters applied, explanation, waited_s


class PhotometryPoint(Base):
    """A light of a variable-star target measured (or not) by the imaging service (``imaging/photometry``)."""

    __tablename__ = "photometry_points"
    __table_args__ = (
        Index("ix_photometry_points_target_night", "target", "night"),
        Index("ix_photometry_points_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    #: SHA-256 of topic and payload: a message the broker delivers twice (QoS 1) is stored once.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[datetime]
    night: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(200))
    frame_id: Mapped[int] = mapped_column(BigInteger)
    filter: Mapped[str | None] = mapped_column(String(100))
    band: Mapped[str | None] = mapped_column(String(16))
    jd: Mapped[float | None] = mapped_column(Float)
    magnitude: Mapped[float | None] = mapped_column(Float)
    error: Mapped[float | None] = mapped_column(Float)
    check_magnitude: Mapped[float | None] = mapped_column(Float)
    check_residual: Mapped[float | None] = mapped_column(Float)
    report: Mapped[str | None] = mapped_column(Text)  # the night's AAVSO report, relative to the repository root
    data: Mapped[dict[str, Any]]  # the whole message


class TransitFitRecord(Base):
    """An exoplanet transit night fitted (or not) by the imaging service (``imaging/transits``): one row
    per message; the newest of a night and planet is its result. The report, plot and points are files
    of the imaging repository, read from there."""

    __tablename__ = "transit_fits"
    __table_args__ = (
        Index("ix_transit_fits_planet_night", "planet", "night"),
        Index("ix_transit_fits_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    #: SHA-256 of topic and payload: a message the broker delivers twice (QoS 1) is stored once.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[datetime]
    night: Mapped[str] = mapped_column(String(10))
    planet: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    tc: Mapped[float | None] = mapped_column(Float)
    report: Mapped[str | None] = mapped_column(Text)  # the files, relative to the imaging repository's root
    plot: Mapped[str | None] = mapped_column(Text)
    points: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]]  # the whole message


class McpStateRecord(Base):
    __tablename__ = "mcp_states"
    __table_args__ = (UniqueConstraint("site", "time", name="uq_mcp_states_site_time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[str] = mapped_column(String(16))
    roof: Mapped[str] = mapped_column(String(16))
    safe: Mapped[bool] = mapped_column(Boolean)
    alarm: Mapped[bool] = mapped_column(Boolean)
    unsafe_reasons: Mapped[list[Any]]


class EventRecord(Base):
    """The audit log: every event any service published (MCP actions, alarms, ...)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_time", "time"),
        Index("ix_events_service_time", "service", "time"),
        Index("ix_events_site_time", "site", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    #: SHA-256 of topic and payload: a message the broker delivers twice (QoS 1) is stored once.
    #: The topic carries the site's prefix, so two sites never share one.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[datetime]
    service: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]]


class SchedulerPlanRecord(Base):
    __tablename__ = "scheduler_plans"
    __table_args__ = (
        UniqueConstraint("site", "time", name="uq_scheduler_plans_site_time"),
        Index("ix_scheduler_plans_night", "night"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    night: Mapped[str] = mapped_column(String(10))
    plan: Mapped[dict[str, Any]]


class AvailabilityChange(Base):
    """A change of a service's availability (online/offline/stopped), as the web service saw it."""

    __tablename__ = "availability_changes"
    __table_args__ = (
        Index("ix_availability_changes_service_time", "service", "time"),
        Index("ix_availability_changes_site_service_time", "site", "service", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    time: Mapped[datetime]
    service: Mapped[str] = mapped_column(String(64))
    availability: Mapped[str] = mapped_column(String(16))


class NightSummaryRecord(Base):
    """The end-of-night summary of one site's night: made once the MCP said the night ended, and
    whether it was sent, so a restart of the web service never sends it twice."""

    __tablename__ = "night_summaries"
    __table_args__ = (UniqueConstraint("site", "night", name="uq_night_summaries_site_night"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = site_column()
    night: Mapped[str] = mapped_column(String(10))
    ended_at: Mapped[datetime]  # the MCP's night_ended event
    summary: Mapped[dict[str, Any]]  # as sent (obsy_web.nights.night_summary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None]


class IngestReceipt(Base):
    """The message last stored under each MQTT packet id of the ingest session.

    The ingestor acknowledges a message to the broker only after its commit. If it dies in
    between, the broker sends the message again with the same packet id and the DUP flag;
    finding its digest here means it is stored already, even where a table has no natural
    key (availability changes). Written in the same transaction as the rows. Packet ids
    are 1 to 65535, so the table never holds more rows than that.
    """

    __tablename__ = "ingest_receipts"

    packet_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: obsy_web.ingest.records.message_digest of the message.
    digest: Mapped[str] = mapped_column(String(64))


# --- owned here -----------------------------------------------------------------------


class TargetRecord(Base):
    __tablename__ = "targets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    catalogue_id: Mapped[str | None] = mapped_column(String(64))
    ra_deg: Mapped[float] = mapped_column(Float)
    dec_deg: Mapped[float] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    constraints: Mapped[dict[str, Any]]
    #: A variable star's time series (obsy.messages.TimeSeries as JSON); None for a number of frames.
    time_series: Mapped[dict[str, Any] | None]
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    exposure_plans: Mapped[list[ExposurePlanRecord]] = relationship(
        back_populates="target", cascade="all, delete-orphan", order_by="ExposurePlanRecord.position"
    )


class ExposurePlanRecord(Base):
    __tablename__ = "exposure_plans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    filter: Mapped[str | None] = mapped_column(String(32))
    exposure_s: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    acquired: Mapped[int] = mapped_column(Integer, default=0)
    binning: Mapped[int] = mapped_column(Integer, default=1)
    gain: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(Integer)
    frame_type: Mapped[str] = mapped_column(String(8), default="Light")
    target: Mapped[TargetRecord] = relationship(back_populates="exposure_plans")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    #: The sites this account may see and act on (ids, as in ``web.sites``); NULL: every site.
    sites: Mapped[list[Any] | None] = mapped_column(nullable=True)


class SessionRecord(Base):
    """A login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    user: Mapped[User] = relationship()


class ApiToken(Base):
    """A token for scripts (``Authorization: Bearer ...``); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    user: Mapped[User] = relationship()
