"""The imaging tables. They may share a database with the web service (compose: one Postgres),
so every name starts with ``imaging_`` and Alembic keeps its revision in ``imaging_alembic_version``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION_TABLE = "imaging_alembic_version"


class Base(DeclarativeBase):
    pass


class Frame(Base):
    """One raw frame in the repository. Its identity is the hash of the file's bytes."""

    __tablename__ = "imaging_frames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: Relative to the repository root.
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    #: How the file got in: ``hardlink``, ``copy`` (another file system).
    placement: Mapped[str] = mapped_column(String(16))
    source_path: Mapped[str] = mapped_column(String(2048))
    source_mtime_ns: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    #: ``watch``, ``import`` (later: ``ekos`` for the captureComplete D-Bus signal).
    route: Mapped[str] = mapped_column(String(16))
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    frame_type: Mapped[str] = mapped_column(String(16))
    program: Mapped[str] = mapped_column(String(16))
    night: Mapped[str] = mapped_column(String(10))
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    exposure_s: Mapped[float | None] = mapped_column(Float)
    binning_x: Mapped[int] = mapped_column(Integer)
    binning_y: Mapped[int] = mapped_column(Integer)
    gain: Mapped[float | None] = mapped_column(Float)
    offset: Mapped[float | None] = mapped_column(Float)
    readout_mode: Mapped[str | None] = mapped_column(String(100))
    sensor_temp_c: Mapped[float | None] = mapped_column(Float)
    setpoint_temp_c: Mapped[float | None] = mapped_column(Float)
    camera: Mapped[str | None] = mapped_column(String(200))
    telescope: Mapped[str | None] = mapped_column(String(200))
    focal_length_mm: Mapped[float | None] = mapped_column(Float)
    pixel_size_um: Mapped[float | None] = mapped_column(Float)
    ra_deg: Mapped[float | None] = mapped_column(Float)
    dec_deg: Mapped[float | None] = mapped_column(Float)
    site_latitude: Mapped[float | None] = mapped_column(Float)
    site_longitude: Mapped[float | None] = mapped_column(Float)
    site_elevation_m: Mapped[float | None] = mapped_column(Float)
    date_obs: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    jd_mid: Mapped[float | None] = mapped_column(Float(precision=53))
    bjd_tdb_mid: Mapped[float | None] = mapped_column(Float(precision=53))
    airmass: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    bitpix: Mapped[int] = mapped_column(Integer)
    compressed: Mapped[bool] = mapped_column(default=False)
    #: The full header as written: [[keyword, value, comment], ...] in file order.
    header: Mapped[list[Any]] = mapped_column(JSON)
    notes: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_imaging_frames_night_type", "night", "frame_type"),
        Index("ix_imaging_frames_source", "source_path"),
    )


class QuarantinedFile(Base):
    """A file that could not be taken, with why; the file itself is copied or linked aside."""

    __tablename__ = "imaging_quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_path: Mapped[str] = mapped_column(String(2048))
    source_mtime_ns: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    problem: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    #: Relative to the quarantine folder; empty when no copy could be made (the original stays).
    quarantined_path: Mapped[str | None] = mapped_column(String(1024))
    route: Mapped[str] = mapped_column(String(16))
    quarantined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # One record per version of a file: the same bad file seen again is not quarantined twice.
        UniqueConstraint("source_path", "source_mtime_ns", "size_bytes", name="uq_imaging_quarantine_source"),
    )


class Grade(Base):
    """A light's quality figures and verdict; the reasons say which limits it failed."""

    __tablename__ = "imaging_grades"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"), unique=True)
    #: Copied from the frame: the night's medians are taken per night, target and filter.
    night: Mapped[str] = mapped_column(String(10))
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    stars: Mapped[int] = mapped_column(Integer)
    fwhm_px: Mapped[float | None] = mapped_column(Float)
    fwhm_arcsec: Mapped[float | None] = mapped_column(Float)
    hfr_px: Mapped[float | None] = mapped_column(Float)
    eccentricity: Mapped[float | None] = mapped_column(Float)
    background: Mapped[float] = mapped_column(Float)
    noise: Mapped[float] = mapped_column(Float)
    snr: Mapped[float | None] = mapped_column(Float)
    accepted: Mapped[bool]
    #: Every failed limit, worded for people; empty when accepted.
    reasons: Mapped[list[str]] = mapped_column(JSON)
    graded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_imaging_grades_night_target_filter", "night", "target", "filter"),)
