"""The imaging tables. They may share a database with the web service (compose: one Postgres),
so every name starts with ``imaging_`` and Alembic keeps its revision in ``imaging_alembic_version``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
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


class Master(Base):
    """A master (bias, dark, dark-flat, flat) in the calibration library, with its provenance."""

    __tablename__ = "imaging_masters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``<kind>-<hash of its inputs>``: the same frames always make the same id.
    master_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: bias, dark, darkflat, flat (the calibration library's FrameKind).
    kind: Mapped[str] = mapped_column(String(16))
    camera: Mapped[str] = mapped_column(String(200))
    binning_x: Mapped[int] = mapped_column(Integer)
    binning_y: Mapped[int] = mapped_column(Integer)
    gain: Mapped[float | None] = mapped_column(Float)
    offset: Mapped[float | None] = mapped_column(Float)
    readout_mode: Mapped[str | None] = mapped_column(String(100))
    temperature_c: Mapped[float | None] = mapped_column(Float)
    exposure_s: Mapped[float] = mapped_column(Float)
    filter: Mapped[str | None] = mapped_column(String(100))
    optical_train: Mapped[str | None] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    #: The middle of its inputs' exposure starts (flats are matched by it).
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    frame_count: Mapped[int] = mapped_column(Integer)
    #: Relative to the repository root: masters/<camera>/<kind>/<master_id>.fits.
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    #: A dark's bad-pixel map (uint8 FITS), relative to the repository root.
    bad_pixel_path: Mapped[str | None] = mapped_column(String(1024))
    method: Mapped[str] = mapped_column(String(32))
    #: :meth:`~obsy_imaging.calibration.Provenance.as_dict`, plus the bad-pixel map's summary.
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The master of the same group, built later from more frames, that replaces this one.
    superseded_by: Mapped[str | None] = mapped_column(String(64))
    #: Pinned by the user for its group (chosen over newer masters until unpinned): when, and by whom.
    pinned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pinned_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_imaging_masters_kind_camera", "kind", "camera"),)


class MasterInput(Base):
    """Which raw frames a master was combined from."""

    __tablename__ = "imaging_master_inputs"

    master_id: Mapped[int] = mapped_column(ForeignKey("imaging_masters.id", ondelete="CASCADE"), primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"), primary_key=True)


class Calibration(Base):
    """A light's calibration: waiting for its masters, done (which masters, why), or failed (why)."""

    __tablename__ = "imaging_calibrated"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"), unique=True)
    night: Mapped[str] = mapped_column(String(10))
    #: ``pending`` (not tried yet), ``waiting`` (a master is missing), ``calibrated``, ``failed``.
    status: Mapped[str] = mapped_column(String(16))
    #: The calibrated float32 FITS, relative to the repository root.
    path: Mapped[str | None] = mapped_column(String(1024))
    bias_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_masters.id", ondelete="SET NULL"))
    dark_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_masters.id", ondelete="SET NULL"))
    flat_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_masters.id", ondelete="SET NULL"))
    bad_pixels_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_masters.id", ondelete="SET NULL"))
    dark_scale: Mapped[float | None] = mapped_column(Float)
    #: Why each master was chosen (or not), one line per kind: CalibrationPlan.explanation().
    explanation: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: While waiting: what is missing, one line per kind.
    waiting_for: Mapped[list[str]] = mapped_column(JSON, default=list)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    nan_pixels: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    calibrated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Earlier calibrations of this light, replaced when a better master appeared: each with the
    #: masters it used (master ids), its explanation and when it was made; oldest first.
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_imaging_calibrated_status", "status"),
        Index("ix_imaging_calibrated_night", "night"),
    )


class FrameProblem(Base):
    """A registered calibration frame that cannot be used for a master (unreadable now, no signal...)."""

    __tablename__ = "imaging_frame_problems"

    frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LiveStack(Base):
    """A running stack of one night, target and filter, updated as each light is folded in."""

    __tablename__ = "imaging_live_stacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    night: Mapped[str] = mapped_column(String(10))
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    #: The light whose grid the stack is on (the first one registered).
    reference_frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"))
    #: Its background level and spread (median, 1.4826 x MAD): the others are normalised to them.
    reference_location: Mapped[float] = mapped_column(Float)
    reference_scale: Mapped[float] = mapped_column(Float)
    #: Its grade's (SNR / FWHM)^2, which weighs 1; None: it had no grade (every frame weighs 1).
    reference_quality: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    #: float32 FITS (the mean, and the summed weights per pixel as a second HDU), relative to the root.
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    #: The stretched preview (JPEG) beside it.
    preview_path: Mapped[str] = mapped_column(String(1024))
    frame_count: Mapped[int] = mapped_column(Integer)
    integration_s: Mapped[float] = mapped_column(Float)
    left_out: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_imaging_live_stacks_night_target_filter", "night", "target", "filter"),)


class LiveStackFrame(Base):
    """A light the live stack has dealt with: folded in (weight, transform) or left out (why)."""

    __tablename__ = "imaging_live_stack_frames"

    frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"), primary_key=True)
    stack_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_live_stacks.id", ondelete="CASCADE"))
    #: ``folded`` or ``left_out``.
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    weight: Mapped[float | None] = mapped_column(Float)
    #: The 2x3 matrix taking the light's pixels onto the reference's, row by row.
    transform: Mapped[list[float] | None] = mapped_column(JSON)
    pairs: Mapped[int | None] = mapped_column(Integer)
    rms_px: Mapped[float | None] = mapped_column(Float)
    exposure_s: Mapped[float | None] = mapped_column(Float)
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_imaging_live_stack_frames_stack", "stack_id"),)


class NightStack(Base):
    """A live stack stacked again with rejection once its night is over: the stack of record."""

    __tablename__ = "imaging_night_stacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    live_stack_id: Mapped[int] = mapped_column(ForeignKey("imaging_live_stacks.id", ondelete="CASCADE"), unique=True)
    night: Mapped[str] = mapped_column(String(10))
    target: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    #: float32 FITS (the image; REJECTED and COVERAGE maps as further HDUs), relative to the root.
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    frame_count: Mapped[int] = mapped_column(Integer)
    #: The live stack's frame count when this was built: a light folded in later makes it due again.
    source_frames: Mapped[int] = mapped_column(Integer)
    integration_s: Mapped[float] = mapped_column(Float)
    rejection: Mapped[str] = mapped_column(String(64))  # e.g. "winsorized 3.0/3.0"
    #: Share of all pixel values the rejection dropped.
    rejected_fraction: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProjectStack(Base):
    """A target's lights of every night, one filter, registered onto one reference and stacked."""

    __tablename__ = "imaging_project_stacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(200))
    filter: Mapped[str | None] = mapped_column(String(100))
    #: The light whose grid the stack is on; kept for the next build so the registrations stay valid.
    reference_frame_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_frames.id", ondelete="SET NULL"))
    #: float32 FITS (REJECTED and COVERAGE maps as further HDUs), relative to the root; JPEGs beside it.
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    nights: Mapped[list[str]] = mapped_column(JSON)
    frame_count: Mapped[int] = mapped_column(Integer)
    left_out: Mapped[int] = mapped_column(Integer)
    integration_s: Mapped[float] = mapped_column(Float)
    rejection: Mapped[str] = mapped_column(String(64))
    rejected_fraction: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_imaging_project_stacks_target", "target", "filter"),)


class ProjectStackFrame(Base):
    """A light of a project stack: stacked (its transform onto the reference) or left out (why)."""

    __tablename__ = "imaging_project_stack_frames"

    stack_id: Mapped[int] = mapped_column(ForeignKey("imaging_project_stacks.id", ondelete="CASCADE"), primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"), primary_key=True)
    #: ``stacked`` or ``left_out``.
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    #: The 2x3 matrix taking the light's pixels onto the reference's, row by row.
    transform: Mapped[list[float] | None] = mapped_column(JSON)
    pairs: Mapped[int | None] = mapped_column(Integer)


class PhotometryMeasurement(Base):
    """A light of a variable-star target after differential photometry: its magnitude, or the reasons
    it has none (``status`` ``measured`` or ``failed``). One per light and target (a field may hold
    several); the AAVSO report of its night and target is written from these rows."""

    __tablename__ = "imaging_photometry"

    frame_id: Mapped[int] = mapped_column(ForeignKey("imaging_frames.id", ondelete="CASCADE"), primary_key=True)
    #: The target's AAVSO name (the configured name, whatever the OBJECT header's spelling).
    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    night: Mapped[str] = mapped_column(String(10))
    #: The frame's filter, and the AAVSO filter code it is reported in.
    filter: Mapped[str | None] = mapped_column(String(100))
    band: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    #: Mid-exposure: JD (UTC), heliocentric JD (UTC), BJD_TDB.
    jd: Mapped[float | None] = mapped_column(Float(precision=53))
    hjd: Mapped[float | None] = mapped_column(Float(precision=53))
    bjd_tdb: Mapped[float | None] = mapped_column(Float(precision=53))
    magnitude: Mapped[float | None] = mapped_column(Float)
    error: Mapped[float | None] = mapped_column(Float)
    check_label: Mapped[str | None] = mapped_column(String(100))
    check_instrumental: Mapped[float | None] = mapped_column(Float)
    check_magnitude: Mapped[float | None] = mapped_column(Float)
    check_residual: Mapped[float | None] = mapped_column(Float)
    airmass: Mapped[float | None] = mapped_column(Float)
    #: On the standard system through the configured colour term (the report's TRANS=YES).
    transformed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The comparison stars used: [{label, catalogue_mag, instrumental_mag}].
    comparisons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: The AAVSO chart ID; None for the observer's own comparison stars.
    chart_id: Mapped[str | None] = mapped_column(String(20))
    wcs_source: Mapped[str | None] = mapped_column(String(32))
    fwhm_px: Mapped[float | None] = mapped_column(Float)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_imaging_photometry_night_target", "night", "target"),)


class TransitFit(Base):
    """One planet's transit on one night: the fit (``status`` ``fitted``), why there is none
    (``failed``), or that its window is not over yet (``waiting``). The Exoplanet Watch report, the
    plot and the points' CSV are files under the repository root (docs/imaging-transits.md)."""

    __tablename__ = "imaging_transit_fits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    night: Mapped[str] = mapped_column(String(10))
    #: The planet's name in the ephemeris file (``pl_name``); ``target`` the frames' OBJECT.
    planet: Mapped[str] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    filter: Mapped[str | None] = mapped_column(String(100))
    epoch: Mapped[int | None] = mapped_column(Integer)
    #: BJD_TDB; the errors are 1σ.
    tc: Mapped[float | None] = mapped_column(Float(precision=53))
    tc_err: Mapped[float | None] = mapped_column(Float)
    predicted_tc: Mapped[float | None] = mapped_column(Float(precision=53))
    #: Observed minus calculated mid-time, days.
    o_minus_c: Mapped[float | None] = mapped_column(Float)
    o_minus_c_err: Mapped[float | None] = mapped_column(Float)
    rp_rs: Mapped[float | None] = mapped_column(Float)
    rp_rs_err: Mapped[float | None] = mapped_column(Float)
    a_rs: Mapped[float | None] = mapped_column(Float)
    a_rs_err: Mapped[float | None] = mapped_column(Float)
    inc: Mapped[float | None] = mapped_column(Float)
    inc_err: Mapped[float | None] = mapped_column(Float)
    #: (Rp/R*)², a fraction.
    depth: Mapped[float | None] = mapped_column(Float)
    depth_err: Mapped[float | None] = mapped_column(Float)
    #: T14, days.
    duration: Mapped[float | None] = mapped_column(Float)
    duration_err: Mapped[float | None] = mapped_column(Float)
    partial: Mapped[bool | None] = mapped_column()
    #: Which contact a partial transit shows: ``ingress``, ``egress`` (None for a full transit).
    contact: Mapped[str | None] = mapped_column(String(16))
    detrending: Mapped[str | None] = mapped_column(String(16))
    points_used: Mapped[int] = mapped_column(Integer, default=0)
    points_rejected: Mapped[int] = mapped_column(Integer, default=0)
    ensemble_size: Mapped[int | None] = mapped_column(Integer)
    chi2_reduced: Mapped[float | None] = mapped_column(Float)
    red_noise_beta: Mapped[float | None] = mapped_column(Float)
    error_scale: Mapped[float | None] = mapped_column(Float)
    #: The lights of the night it was made from (count, newest id): new lights make it due again.
    lights: Mapped[int] = mapped_column(Integer, default=0)
    last_frame_id: Mapped[int | None] = mapped_column(Integer)
    #: Relative to the repository root.
    report_path: Mapped[str | None] = mapped_column(String(1024))
    plot_path: Mapped[str | None] = mapped_column(String(1024))
    points_path: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("night", "planet", name="uq_imaging_transit_fits_night_planet"),)


class TransitPoint(Base):
    """One light of a transit night: its flux and what the fit made of it, or why it was not used."""

    __tablename__ = "imaging_transit_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fit_id: Mapped[int] = mapped_column(ForeignKey("imaging_transit_fits.id", ondelete="CASCADE"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_frames.id", ondelete="SET NULL"))
    bjd_tdb: Mapped[float | None] = mapped_column(Float(precision=53))
    #: Host / ensemble, the reduction's scale; ``error`` on the same scale.
    flux: Mapped[float | None] = mapped_column(Float)
    error: Mapped[float | None] = mapped_column(Float)
    airmass: Mapped[float | None] = mapped_column(Float)
    background: Mapped[float | None] = mapped_column(Float)
    fwhm: Mapped[float | None] = mapped_column(Float)
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    #: The fitted model (transit × systematics) at this point and flux − model, on the flux's scale.
    model: Mapped[float | None] = mapped_column(Float)
    residual: Mapped[float | None] = mapped_column(Float)
    used: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_imaging_transit_points_fit", "fit_id"),)
