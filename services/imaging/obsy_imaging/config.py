"""The imaging section of the configuration (registered in the ``obsy.config_sections`` entry-point group).

It reads two settings of the scheduler's section: ``scheduler.ekos.fits_dir`` (the capture folder when none
is set) and ``scheduler.transits`` (the ephemeris file and baseline, a sub-schema kept in the core), through
``ObsyConfig.setting_of``, so the imaging image needs no scheduler installed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from obsy.config.base import Section, ServiceSection
from obsy.config.sections import SchedulerTransitsConfig, imaging_repository_dir

if TYPE_CHECKING:
    from obsy.config.model import CoreConfig

#: File name endings the imaging service looks at in capture folders (case-insensitive).
IMAGING_FRAME_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fz", ".xisf")


class ImagingGradingConfig(Section):
    """Grading of lights: absolute limits, and limits relative to the night's median for the same
    target and filter (once ``min_frames_for_relative`` lights of it are graded). Empty = no limit."""

    enabled: bool = True
    min_stars: int | None = Field(default=10, ge=0, description="fewer stars detected: rejected (clouds, dew)")
    max_fwhm_arcsec: float | None = Field(
        default=None, gt=0, description="wider stars: rejected (needs FOCALLEN and pixel size in the header)"
    )
    max_fwhm_px: float | None = Field(default=None, gt=0, description="wider stars, in pixels: rejected")
    max_eccentricity: float | None = Field(default=0.6, gt=0, le=1, description="more elongated stars: rejected")
    min_snr: float | None = Field(default=None, ge=0, description="lower median star SNR: rejected")
    max_fwhm_ratio: float | None = Field(
        default=1.3, gt=1, description="FWHM above this times the night's median for the target/filter: rejected"
    )
    min_stars_ratio: float | None = Field(
        default=0.5, gt=0, lt=1, description="fewer stars than this times the night's median: rejected"
    )
    max_background_ratio: float | None = Field(
        default=2.0, gt=1, description="sky background above this times the night's median: rejected (moon, dawn)"
    )
    min_frames_for_relative: int = Field(default=3, ge=1, description="graded lights before the relative limits apply")


class ImagingCalibrationConfig(Section):
    """Masters built from the repository's calibration frames, lights calibrated as they arrive
    (docs/imaging-calibration.md, "In the service")."""

    enabled: bool = True
    min_frames: int = Field(
        default=5, ge=2, le=1000, description="raw frames a group needs before its master is built automatically"
    )
    quiet_time: float = Field(
        default=30.0,
        ge=0,
        description="seconds no new frame may have joined a ready group before its master is built (a sequence "
        "still running adds frames; a group that grows later is built again, the bigger master replacing the other)",
    )
    quiet_exposures: float = Field(
        default=2.0,
        ge=0,
        description="and this many of the group's exposure times (a series of 300 s darks adds a frame every 300 s)",
    )
    method: Literal["median", "mean", "sigma_clip", "winsorized_sigma_clip"] = Field(
        default="sigma_clip", description="how the raw frames of a master are combined"
    )
    sigma_low: float = Field(default=3.0, gt=0, description="rejecting methods: lower clipping factor")
    sigma_high: float = Field(default=3.0, gt=0, description="rejecting methods: upper clipping factor")
    temperature_tolerance: float = Field(default=2.0, ge=0, description="°C between a light's sensor and its masters'")
    exposure_tolerance: float = Field(
        default=0.01, ge=0, lt=1, description="relative: a dark of the light's exposure (and grouping of darks)"
    )
    flat_max_age_days: float = Field(default=7.0, gt=0, description="days between a light and its flat, at most")
    master_max_age_days: float | None = Field(
        default=None, gt=0, description="days between a light and its bias or dark, at most; empty = any age"
    )
    require_dark: bool = Field(default=True, description="a light waits until a dark (or a scalable one) matches")
    require_flat: bool = Field(default=True, description="a light waits until a flat matches")
    bad_pixels: bool = Field(
        default=True,
        description="make a bad-pixel map from each master dark (with a matching bias) and repair those pixels "
        "of the lights calibrated with that dark",
    )
    optical_train: list[Literal["telescope", "focal_length", "camera"]] = Field(
        default_factory=lambda: ["telescope", "focal_length", "camera"],
        max_length=3,
        description="what names a frame's optical train (from TELESCOP, FOCALLEN, INSTRUME): a flat serves a light "
        "only of the same train when both have one; empty = flats by filter only",
    )
    recalibrate_nights: int = Field(
        default=2,
        ge=0,
        le=60,
        description="lights of this many nights (tonight and the ones before) are calibrated again when a master "
        "appears (or is pinned) that would now be chosen for them; 0 = never",
    )


class ImagingLiveStackConfig(Section):
    """The live stack: each calibrated, accepted light registered and folded into the running stack
    of its night, target and filter; a stretched preview on the bus (docs/imaging-stacking.md, "In the service")."""

    enabled: bool = True
    nights: int | None = Field(
        default=2,
        ge=1,
        description="lights of this many observing nights, the current one included, are stacked live (2: also "
        "last night's, calibrated late by the next evening's flats); empty = every night (an imported archive too)",
    )
    weighting: Literal["grades", "equal"] = Field(
        default="grades",
        description="grades: each frame weighs (SNR / FWHM)^2 from grading, relative to the reference frame's "
        "(a frame without a grade weighs 1); equal: every frame the same",
    )
    normalisation: Literal["additive_scaling", "additive", "none"] = Field(
        default="additive_scaling", description="each frame brought to the reference's background level (and spread)"
    )
    interpolation: Literal["lanczos", "bicubic"] = Field(default="lanczos", description="resampling onto the reference")
    preview_width: int = Field(default=1024, ge=64, le=8192, description="pixels; the preview JPEG is shrunk to this")
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    shadows_clip: float = Field(
        default=-2.8, le=0, description="autostretch: the black point, in robust sigmas (MAD) from the median"
    )
    target_background: float = Field(
        default=0.25, gt=0, lt=1, description="autostretch: where the median (the sky) lands, 0..1"
    )


class ImagingNightStackConfig(Section):
    """The stack of record: once a night is over, each live stack is stacked again from its calibrated
    lights with outlier rejection (satellite trails, cosmic rays, planes), on the live stack's
    registrations (docs/imaging-stacking.md, "In the service")."""

    enabled: bool = True
    rejection: Literal["none", "sigma", "winsorized", "linear_fit"] = Field(
        default="winsorized", description="how outliers are dropped per pixel (winsorized: Huber's sigma clipping)"
    )
    low: float = Field(default=3.0, gt=0, description="rejection limit below, in sigmas")
    high: float = Field(default=3.0, gt=0, description="rejection limit above, in sigmas")
    min_frames: int = Field(
        default=3, ge=2, description="a live stack of fewer lights is not stacked again (rejection needs several)"
    )
    memory_budget_mb: float = Field(
        default=256.0, ge=16, description="pixel values held at once: the stack goes in bands of rows within it"
    )


class ImagingProjectStackConfig(Section):
    """The whole project of a target: per target and filter, one stack of every night's accepted,
    calibrated lights, registered onto one reference; colour images from the filters' stacks
    (docs/imaging-stacking.md, "The project stack")."""

    enabled: bool = True
    rebuild_on_night_stack: bool = Field(
        default=True,
        description="true: a target/filter's project stack is stacked again once a night stack of it is built; "
        "false: on command only (obsy-imaging stack-project, <p>/imaging/projectstack/set)",
    )
    rejection: Literal["none", "sigma", "winsorized", "linear_fit"] = Field(
        default="winsorized", description="how outliers are dropped per pixel"
    )
    low: float = Field(default=3.0, gt=0, description="rejection limit below, in sigmas")
    high: float = Field(default=3.0, gt=0, description="rejection limit above, in sigmas")
    min_frames: int = Field(default=3, ge=2, description="fewer registered lights: no project stack")
    memory_budget_mb: float = Field(
        default=256.0, ge=16, description="pixel values held at once: the stack goes in bands of rows within it"
    )
    thumbnail_width: int = Field(default=400, ge=32, le=4096, description="pixels; the stretched thumbnail JPEG")
    jpeg_quality: int = Field(default=90, ge=10, le=100)


_SEXAGESIMAL_ANGLE = re.compile(
    r"^\s*([+-])?\s*(\d+(?:\.\d*)?)[\s:hd°]+(\d+(?:\.\d*)?)(?:[\s:m'′]+(\d+(?:\.\d*)?))?[\s\"s″]*$"
)


def _angle(value: object, *, hours: bool, what: str) -> float:
    """Degrees from a number, or from a sexagesimal text (hours for RA, degrees for Dec; the sign of the whole)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of degrees or a sexagesimal text")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _SEXAGESIMAL_ANGLE.match(text)
    if not match or float(match.group(3)) >= 60 or float(match.group(4) or 0) >= 60:
        unit = "'HH:MM:SS.s' (hours)" if hours else "'±DD:MM:SS' (degrees)"
        raise ValueError(f"{what} {text!r} is neither degrees nor {unit}")
    size = float(match.group(2)) + float(match.group(3)) / 60 + float(match.group(4) or 0) / 3600
    size = -size if match.group(1) == "-" else size
    return size * 15.0 if hours else size


def photometry_name_key(name: str | None) -> str:
    """A target name compared without case or blanks ("SS Cyg", "ss cyg", "SSCYG" are one)."""
    return re.sub(r"\s+", "", name or "").casefold()


def colour_indices(value: dict[str, float]) -> dict[str, float]:
    """Colour indices by their usual names ("b - v" is B-V); raises ValueError for anything else."""
    names = {}
    for name, index in value.items():
        match = re.fullmatch(r"\s*([UBVRI])\s*-\s*([UBVRI])\s*", name, re.IGNORECASE)
        if match is None or match.group(1).upper() == match.group(2).upper():
            raise ValueError(f"colour {name!r} is not a colour index such as B-V, V-R, V-I")
        names[f"{match.group(1).upper()}-{match.group(2).upper()}"] = index
    return names


class PhotometryStarConfig(Section):
    """One of the observer's own comparison (or check) stars."""

    label: str = Field(min_length=1, max_length=20, description="what the report calls it (CNAME/KNAME)")
    ra: float = Field(ge=0, lt=360, description="degrees, or 'HH:MM:SS.s' (hours)")
    dec: float = Field(ge=-90, le=90, description="degrees, or '±DD:MM:SS'")
    mag: float = Field(description="its catalogue magnitude in the band the target is reported in")
    mag_err: float = Field(default=0.0, ge=0, description="the catalogue magnitude's error")
    colours: dict[str, float] = Field(
        default_factory=dict, description="its standard colour indices, e.g. {B-V: 0.55}, for transformed magnitudes"
    )

    @field_validator("colours")
    @classmethod
    def _colour_names(cls, value: dict[str, float]) -> dict[str, float]:
        return colour_indices(value)

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value: object) -> float:
        return _angle(value, hours=True, what="ra")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value: object) -> float:
        return _angle(value, hours=False, what="dec")

    @field_validator("label")
    @classmethod
    def _plain_label(cls, value: str) -> str:
        if "," in value or "|" in value or not value.strip():
            raise ValueError(f"label {value!r} may not be blank or hold ',' or '|' (the report's separators)")
        return value.strip()


class PhotometryTargetConfig(Section):
    """A variable star and its comparison stars: an AAVSO VSP chart (a file, or fetched by its ID or the
    star's name), or the observer's own stars."""

    name: str = Field(
        min_length=1,
        max_length=30,
        description="the star's AAVSO name (the report's NAME); frames whose OBJECT is this name, case and blanks "
        "ignored, are measured",
    )
    aliases: list[str] = Field(default_factory=list, description="other OBJECT names of the same star")
    ra: float | None = Field(default=None, ge=0, lt=360, description="degrees or 'HH:MM:SS.s'; empty = the chart's")
    dec: float | None = Field(default=None, ge=-90, le=90, description="degrees or '±DD:MM:SS'; empty = the chart's")
    chart_file: Path | None = Field(
        default=None, description="a chart downloaded from VSP (JSON, or its photometry table as CSV)"
    )
    chart_id: str | None = Field(
        default=None,
        description="an AAVSO chart ID: read from the chart cache, fetched into it when fetch_charts is on",
    )
    fetch_by_name: bool = Field(
        default=False, description="no chart ID: fetch VSP's chart for the star's name (with fetch_charts on)"
    )
    fov: float = Field(default=60.0, gt=0, le=1200, description="arcmin: the field of a chart fetched by name")
    maglimit: float = Field(default=16.0, gt=0, le=25, description="the faintest comparison of a chart fetched by name")
    comparisons: list[PhotometryStarConfig] = Field(
        default_factory=list, description="the observer's own comparison stars (then the report's CHART is na)"
    )
    use: list[str] | None = Field(
        default=None, description="labels or AUIDs of the chart's stars to use as comparisons; empty = all in the band"
    )
    check: str | None = Field(
        default=None, description="label or AUID of the check star (the chart's, or one of comparisons)"
    )
    filters: dict[str, str] = Field(
        default_factory=dict,
        description="frame filter name -> AAVSO filter code (e.g. {Green: TG, L: CV}); V, B, R, I... map to themselves",
    )
    fields: list[str] = Field(
        default_factory=list,
        description="OBJECT names of frames that hold this star too (another target's field): measured there too",
    )
    colours: dict[str, float] = Field(
        default_factory=dict,
        description="the star's standard colour indices for transformed magnitudes, e.g. {B-V: 0.72}",
    )

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value: object) -> float | None:
        return None if value is None else _angle(value, hours=True, what="ra")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value: object) -> float | None:
        return None if value is None else _angle(value, hours=False, what="dec")

    @field_validator("chart_id")
    @classmethod
    def _chart_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9]{3,20}", value.strip()):
            raise ValueError(f"{value!r} is not an AAVSO chart ID (letters and digits, such as X28765BL)")
        return None if value is None else value.strip().upper()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "," in value or "|" in value or not value.strip():
            raise ValueError(f"name {value!r} may not be blank or hold ',' or '|' (the report's separators)")
        return value.strip()

    @model_validator(mode="after")
    def _one_sequence(self) -> PhotometryTargetConfig:
        sources = [
            name
            for name, given in (
                ("chart_file", self.chart_file is not None),
                ("chart_id", self.chart_id is not None),
                ("fetch_by_name", self.fetch_by_name),
                ("comparisons", bool(self.comparisons)),
            )
            if given
        ]
        if len(sources) != 1:
            raise ValueError(
                f"target {self.name}: give exactly one of chart_file, chart_id, fetch_by_name or comparisons"
                + (f" (not {' and '.join(sources)})" if sources else "")
            )
        if self.comparisons:
            if self.ra is None or self.dec is None:
                raise ValueError(f"target {self.name}: own comparison stars need the target's ra and dec")
            labels = [photometry_name_key(s.label) for s in self.comparisons]
            if len(set(labels)) != len(labels):
                raise ValueError(f"target {self.name}: two comparison stars have the same label")
            if self.check is not None and photometry_name_key(self.check) not in labels:
                raise ValueError(f"target {self.name}: check star {self.check} is not one of its comparisons")
            if len(self.comparisons) < (2 if self.check is not None else 1):
                raise ValueError(f"target {self.name}: needs a comparison star besides the check star")
            if self.use is not None:
                raise ValueError(f"target {self.name}: 'use' picks stars of a chart; own comparisons are all used")
        return self

    @field_validator("colours")
    @classmethod
    def _colour_names(cls, value: dict[str, float]) -> dict[str, float]:
        return colour_indices(value)

    @field_validator("filters")
    @classmethod
    def _filter_codes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [code for code in value.values() if not re.fullmatch(r"[A-Za-z]{1,5}", code.strip())]
        if bad:
            raise ValueError(f"{bad} are not AAVSO filter codes (V, B, R, I, TG, CV...)")
        return {name: code.strip().upper() for name, code in value.items()}


#: AAVSO's names of transformation coefficients: T<band>_<colour>, e.g. Tv_bv (V with B-V), Tr_vi.
TRANSFORMATION_NAME = re.compile(r"T([ubvri])_([ubvri])([ubvri])", re.IGNORECASE)


def _aavso_code(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{1,10}", value.strip()):
        raise ValueError(f"{value!r} is not an AAVSO observer code (letters and digits, at most 10)")
    return value.strip().upper()


class ImagingPhotometryConfig(Section):
    """Differential photometry of variable stars and their AAVSO reports (docs/imaging-photometry.md)."""

    enabled: bool = False
    observer_code: str | None = Field(
        default=None, description="your AAVSO observer code (the report's OBSCODE); needed when enabled"
    )
    targets: list[PhotometryTargetConfig] = Field(default_factory=list)
    fetch_charts: bool = Field(
        default=False,
        description="fetch charts named by chart_id (or fetch_by_name) from AAVSO VSP when not in the cache "
        "(offline first: a cached chart is used without the network)",
    )
    chart_cache: Path | None = Field(
        default=None, description="where fetched charts are kept; empty = <data_dir>/imaging/charts"
    )
    vsp_url: str = Field(default="https://app.aavso.org/vsp/api/chart/", description="VSP's chart API")
    fetch_timeout: float = Field(default=20.0, gt=0, le=300, description="seconds a chart fetch may take")
    gain_e_per_adu: float | None = Field(
        default=None, gt=0, description="camera gain, e-/ADU (CCD noise equation); empty = the header's EGAIN"
    )
    read_noise_e: float = Field(default=0.0, ge=0, description="camera read noise, electrons")
    dark_current_e_per_s: float = Field(default=0.0, ge=0, description="dark current, electrons per pixel per second")
    saturation_adu: float | None = Field(
        default=None,
        gt=0,
        description="the level where the camera saturates (full well through the gain, or the ADC's top); "
        "empty = the header's DATAMAX, else 65535",
    )
    solve_timeout: float = Field(default=30.0, gt=0, le=600, description="seconds a plate solve may take")
    index_dirs: list[Path] = Field(
        default_factory=list,
        description="folders of astrometry.net index files for the plate solves (a custom catalogue's, e.g. "
        "obsy-skysim index); empty = the system's (astrometry.cfg: Debian's Tycho-2 packages)",
    )
    date_type: Literal["JD", "HJD"] = Field(default="JD", description="the report's DATE: JD or HJD (UTC)")
    obstype: Literal["CCD", "CMOS", "DSLR"] = Field(default="CCD", description="the report's OBSTYPE")
    reports: Path | None = Field(
        default=None, description="where the AAVSO reports go; empty = <repository>/reports/aavso"
    )
    bin_frames: int | None = Field(
        default=None, ge=2, le=1000, description="report the mean of this many consecutive frames; empty = each frame"
    )
    bin_minutes: float | None = Field(
        default=None, gt=0, le=1440, description="report the mean of the frames within this many minutes"
    )
    transformation: dict[str, float] = Field(
        default_factory=dict,
        description="the camera's transformation coefficients, AAVSO's names: {Tv_bv: 0.052, Tb_bv: 0.11}; "
        "a band with one is reported transformed (TRANS=YES) where the target's colour is known",
    )

    @field_validator("observer_code")
    @classmethod
    def _obscode(cls, value: str | None) -> str | None:
        return None if value is None else _aavso_code(value)

    @field_validator("transformation")
    @classmethod
    def _coefficient_names(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name in value if not TRANSFORMATION_NAME.fullmatch(name.strip())]
        if bad:
            raise ValueError(
                f"{bad} are not transformation coefficients as AAVSO names them (Tv_bv, Tb_bv, Tr_vr, Ti_vi...)"
            )
        bands: dict[str, str] = {}
        for name in value:
            band = name.strip()[1].lower()
            if band in bands:
                raise ValueError(f"two transformation coefficients for one band: {bands[band]} and {name}")
            bands[band] = name
        return {name.strip(): coefficient for name, coefficient in value.items()}

    @model_validator(mode="after")
    def _complete(self) -> ImagingPhotometryConfig:
        if self.enabled and self.observer_code is None:
            raise ValueError("photometry is enabled: observer_code (your AAVSO observer code) is needed for reports")
        if self.bin_frames is not None and self.bin_minutes is not None:
            raise ValueError("give bin_frames or bin_minutes, not both")
        seen: dict[str, str] = {}
        for target in self.targets:
            for name in (target.name, *target.aliases):
                key = photometry_name_key(name)
                if key in seen:
                    raise ValueError(f"targets {seen[key]} and {target.name} both answer to the name {name!r}")
                seen[key] = target.name
        return self

    def target_for(self, name: str | None) -> PhotometryTargetConfig | None:
        """The target a frame's OBJECT names (case and blanks ignored; aliases too)."""
        key = photometry_name_key(name)
        for target in self.targets:
            if key in {photometry_name_key(n) for n in (target.name, *target.aliases)}:
                return target
        return None

    def targets_in(self, name: str | None) -> list[PhotometryTargetConfig]:
        """Every target a frame whose OBJECT is ``name`` holds: the one it names, then those that list it
        in their ``fields``."""
        key = photometry_name_key(name)
        named = self.target_for(name)
        others = [t for t in self.targets if t is not named and key in {photometry_name_key(n) for n in t.fields}]
        return ([named] if named is not None else []) + others

    def frame_names(self) -> list[str]:
        """Every OBJECT name whose frames photometry measures (names, aliases, fields)."""
        return [name for t in self.targets for name in (t.name, *t.aliases, *t.fields)]

    def chart_cache_dir(self, data_dir: Path) -> Path:
        return (self.chart_cache or data_dir / "imaging" / "charts").resolve()


TransitRegressor = Literal["background", "fwhm", "position"]


class ImagingTransitsConfig(Section):
    """Exoplanet transits: each night's light curve of a planet's host reduced, fitted and reported to
    Exoplanet Watch once its transit window is over (docs/imaging-transits.md, "In the service")."""

    enabled: bool = False
    ephemeris_file: Path | None = Field(
        default=None,
        description="a NASA Exoplanet Archive CSV export (planetary systems table); empty = "
        "scheduler.transits.ephemeris_file (one file serves the planning and the reduction)",
    )
    observer_code: str | None = Field(
        default=None, description="your AAVSO observer code (the report's OBSCODE); needed when enabled"
    )
    secondary_observer_codes: list[str] = Field(
        default_factory=list, description="AAVSO codes of co-observers (the report's SECONDARY_OBSCODES)"
    )
    obstype: Literal["CCD", "CMOS", "DSLR"] = Field(default="CCD", description="the report's OBSTYPE")
    camera: str = Field(default="", max_length=200, description="the camera, for the report's NOTES")
    telescope: str = Field(default="", max_length=200, description="the telescope (aperture, focal length), NOTES")
    notes: str = Field(default="", max_length=500, description="more for the report's NOTES (one line)")
    detrending: Literal["linear", "exponential"] = Field(
        default="linear",
        description="the airmass law: linear in airmass, or exponential (EXOTIC's a1*exp(a2*X), Bouguer's law)",
    )
    regressors: list[TransitRegressor] = Field(
        default_factory=list,
        description="further quantities to detrend by, measured per frame: background, fwhm, position (x and y)",
    )
    min_points: int = Field(default=30, ge=10, le=100_000, description="frames a night needs for a fit")
    quiet_time: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="seconds without a new calibrated light of the night before it is fitted (a burst of lights "
        "is fitted once, not after each)",
    )
    gain_e_per_adu: float | None = Field(
        default=None, gt=0, description="camera gain, e-/ADU (the points' errors); empty = the header's EGAIN"
    )
    read_noise_e: float | None = Field(
        default=None, ge=0, description="camera read noise, electrons; empty = the header's RDNOISE"
    )
    saturation_adu: float | None = Field(
        default=None, gt=0, description="where the camera saturates; empty = the header's SATURATE or DATAMAX"
    )
    index_dirs: list[Path] = Field(
        default_factory=list,
        description="folders of astrometry.net index files for the plate solves; empty = the system's (astrometry.cfg)",
    )
    baseline_min: float | None = Field(
        default=None,
        ge=0,
        le=360,
        description="out-of-transit time before ingress and after egress the window holds; empty = "
        "scheduler.transits.baseline_min",
    )
    reports: Path | None = Field(
        default=None, description="where the reports and plots go; empty = <repository>/reports/exoplanet"
    )

    @field_validator("observer_code")
    @classmethod
    def _obscode(cls, value: str | None) -> str | None:
        return None if value is None else _aavso_code(value)

    @field_validator("secondary_observer_codes")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        return [_aavso_code(code) for code in value]

    @field_validator("camera", "telescope", "notes")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("must be one line (the report holds it on one line)")
        return value.strip()

    @model_validator(mode="after")
    def _complete(self) -> ImagingTransitsConfig:
        if self.enabled and self.observer_code is None:
            raise ValueError("transits are enabled: observer_code (your AAVSO observer code) is needed for reports")
        return self

    def ephemeris_path(self, scheduler: SchedulerTransitsConfig) -> Path | None:
        """The ephemeris file: this section's, else the scheduler's (one file serves both)."""
        return self.ephemeris_file or scheduler.ephemeris_file

    def baseline_minutes(self, scheduler: SchedulerTransitsConfig) -> float:
        return self.baseline_min if self.baseline_min is not None else scheduler.baseline_min


class ImagingEkosSignalConfig(Section):
    """Ekos's ``captureComplete`` D-Bus signal as a second ingest route beside the folder watch."""

    enabled: bool = Field(
        default=False, description="take each frame Ekos reports in captureComplete (deduplicated with the watch)"
    )
    bus_address: str | None = Field(default=None, description="D-Bus address; empty = $DBUS_SESSION_BUS_ADDRESS")
    retry_interval: float = Field(
        default=10.0, gt=0, le=600, description="seconds between tries to reach the session bus (KStars not up yet)"
    )


class ImagingConfig(ServiceSection):
    """The imaging service: frames from the capture program into the repository (docs/imaging.md)."""

    capture_folders: list[Path] = Field(
        default_factory=list,
        description="folders the capture program (Ekos, N.I.N.A., SGP) saves frames to, watched with their "
        "subfolders; empty = the Ekos FITSDirectory the scheduler writes into its sequences (scheduler.ekos.fits_dir)",
    )
    repository: Path | None = Field(
        default=None, description="root of the frame repository; empty = <data_dir>/imaging/repository"
    )
    quarantine: Path | None = Field(
        default=None,
        description="where unusable input is set aside with its reason; empty = <data_dir>/imaging/quarantine",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the imaging tables, e.g. postgresql+psycopg://obsy:secret@db/obsy; "
        "empty = SQLite <data_dir>/imaging/imaging.sqlite3",
    )
    settle_time: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="seconds a new file's size must stay unchanged (and it must be closed) before it is taken",
    )
    incomplete_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds a file may stay incomplete (still written, truncated) before it is quarantined",
    )
    suffixes: list[str] = Field(
        default_factory=lambda: list(IMAGING_FRAME_SUFFIXES),
        min_length=1,
        description="file name endings taken from the capture folders (case-insensitive)",
    )
    publish_interval: float = Field(default=30.0, gt=0, description="seconds between republishing the state")
    ekos_signal: ImagingEkosSignalConfig = ImagingEkosSignalConfig()
    grading: ImagingGradingConfig = ImagingGradingConfig()
    calibration: ImagingCalibrationConfig = ImagingCalibrationConfig()
    live_stack: ImagingLiveStackConfig = ImagingLiveStackConfig()
    night_stack: ImagingNightStackConfig = ImagingNightStackConfig()
    project_stack: ImagingProjectStackConfig = ImagingProjectStackConfig()
    photometry: ImagingPhotometryConfig = ImagingPhotometryConfig()
    transits: ImagingTransitsConfig = ImagingTransitsConfig()

    @field_validator("suffixes")
    @classmethod
    def _dotted(cls, value: list[str]) -> list[str]:
        bad = [suffix for suffix in value if not re.fullmatch(r"(\.[A-Za-z0-9]+)+", suffix)]
        if bad:
            raise ValueError(f"{bad} are not file name endings such as '.fits'")
        return [suffix.lower() for suffix in value]

    def capture_dirs(self, data_dir: Path, ekos_fits_dir: Path | None) -> list[Path]:
        """The folders to watch: the configured ones, else where the scheduler tells Ekos to save frames."""
        folders = self.capture_folders or [ekos_fits_dir or data_dir / "frames"]
        return [folder.expanduser().resolve() for folder in folders]

    def repository_dir(self, data_dir: Path) -> Path:
        return imaging_repository_dir(self.repository, data_dir)

    def quarantine_dir(self, data_dir: Path) -> Path:
        return (self.quarantine or data_dir / "imaging" / "quarantine").resolve()

    def database(self, data_dir: Path) -> str:
        """The configured database URL, or the SQLite file under data_dir."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{(data_dir / 'imaging' / 'imaging.sqlite3').resolve()}"

    def check_config(self, config: CoreConfig) -> None:
        """Transits need an ephemeris file: this section's, or the scheduler's (one file serves both)."""
        if self.transits.enabled and self.transits.ephemeris_path(scheduler_transits(config)) is None:
            raise ValueError(
                "imaging.transits is enabled but no ephemeris file is set: set imaging.transits.ephemeris_file "
                "or scheduler.transits.ephemeris_file (a NASA Exoplanet Archive CSV export)"
            )


def scheduler_transits(config: CoreConfig) -> SchedulerTransitsConfig:
    """``scheduler.transits``, whose ephemeris file and baseline serve where ``imaging.transits`` sets none."""
    return config.setting_of("scheduler", "transits", SchedulerTransitsConfig())
