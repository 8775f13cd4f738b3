"""The scheduler section of the configuration (registered in the ``obsy.config_sections`` entry-point group).

Its ``transits`` sub-section's schema, :class:`~obsy.config.sections.SchedulerTransitsConfig`, is in the
core: the imaging service reads it too. Others read single settings through ``ObsyConfig.setting_of``
(the MCP ``ekos.camera``, the imaging service ``ekos.fits_dir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from obsy.config.base import Section, ServiceSection
from obsy.config.sections import SchedulerTransitsConfig
from obsy.messages import TargetConstraints


class SchedulerWeightsConfig(Section):
    """Weights of the planner's scoring rules (each rule scores 0..1; 0 turns a rule off)."""

    priority: float = Field(default=50, ge=0, description="the target's priority (0..10)")
    setting_soonest: float = Field(default=50, ge=0, description="targets with less visible time left tonight first")
    percent_complete: float = Field(default=50, ge=0, description="finish what is nearly complete")
    meridian_window: float = Field(default=75, ge=0, description="targets near the meridian (least airmass)")
    target_switch: float = Field(default=67, ge=0, description="stay on the current target (saves slews)")
    moon_avoidance: float = Field(default=50, ge=0, description="targets far from the Moon, beyond what is required")


class SchedulerCalibrationConfig(Section):
    """Calibration frames (Dark, Bias and Flat exposure plans): what Ekos can take without a person.

    Ekos (KStars 3.6) takes darks and bias unattended only when the camera has a shutter or a
    dust cap covers the telescope, and flats only from a flat panel (a light box or a dust cap
    with its own light) or a lit wall; otherwise it waits for someone. A target whose plans
    need a source that is not configured here is left out, with the reason.
    """

    camera_shutter: bool = Field(
        default=False,
        description="the camera has a mechanical shutter: darks and bias need no cover (KStars must know it too: "
        "its list of cameras with a shutter, asked once by Ekos)",
    )
    dust_cap: bool = Field(
        default=False,
        description="an INDI dust cap in the Ekos profile that closes over the telescope for darks and bias (also "
        "a flat panel that is a dust cap with its own light: set both)",
    )
    flat_source: Literal["none", "panel", "wall"] = Field(
        default="none",
        description="flats from: none (flat plans are refused); panel (an INDI light box or dust cap with its own "
        "light, in the Ekos profile); wall (the mount points at a lit wall or screen at wall_az/wall_alt)",
    )
    wall_az: float = Field(default=0.0, ge=0, lt=360, description="azimuth of the flat wall, degrees")
    wall_alt: float = Field(default=0.0, ge=-90, le=90, description="altitude of the flat wall, degrees")
    flat_adu: float | None = Field(
        default=None,
        gt=0,
        le=65535,
        description="Ekos adjusts the flat exposure until the mean is this many ADU; empty = the plan's exposure",
    )
    flat_adu_tolerance: float = Field(default=1000, gt=0, le=65535, description="ADU either side of flat_adu")
    park_mount: bool = Field(default=False, description="park the mount before flats (not with a wall)")
    park_dome: bool = Field(default=False, description="park the dome before flats")

    def dark_source(self) -> str | None:
        """How darks and bias are covered, or None when they cannot be taken unattended."""
        if self.dust_cap:
            return "dust_cap"
        if self.camera_shutter:
            return "shutter"
        return None


class SchedulerEkosConfig(Section):
    """How the plan is written as KStars/Ekos schedule (.esl) and sequence (.esq) files."""

    output_dir: Path | None = Field(default=None, description="where the files go; empty = <data_dir>/ekos")
    fits_dir: Path | None = Field(default=None, description="Ekos FITSDirectory for frames; empty = <data_dir>/frames")
    profile: str = Field(default="Simulators", description="the Ekos equipment profile the schedule names")
    camera: str = "CCD Simulator"
    filter_wheel: str | None = Field(default="CCD Simulator", description="empty when the camera has no filter wheel")
    default_filter: str = Field(default="Luminance", description="filter for exposure plans that name none")
    filters: list[str] | None = Field(
        default=None,
        description="the wheel's filter names; empty = read from the wheel's INDI FILTER_NAME when planning",
    )
    filter_aliases: dict[str, str] = Field(
        default_factory=dict, description="plan filter name -> the wheel's name, e.g. {Ha: H_Alpha}"
    )
    startup: Literal["at", "asap"] = Field(default="at", description="start each job at its planned time, or ASAP")
    completion: Literal["at", "sequence", "repeat"] = Field(
        default="sequence",
        description="end when the planned frames are taken (sequence), after `repeats` sequences, or at the planned "
        "end ('at': Ekos repeats the sequence until then, so more frames than planned)",
    )
    repeats: int = Field(default=1, ge=1, le=1000, description="sequences per job with completion 'repeat'")
    steps: list[Literal["Track", "Focus", "Align", "Guide"]] = Field(default_factory=lambda: ["Track"])
    startup_procedure: list[Literal["UnparkDome", "UnparkMount", "UnparkCap"]] = Field(
        default_factory=lambda: ["UnparkMount"]
    )
    shutdown_procedure: list[Literal["WarmCCD", "ParkCap", "ParkMount", "ParkDome"]] = Field(
        default_factory=lambda: ["ParkMount"]
    )
    enforce_weather: bool = Field(default=True, description="Ekos waits for its own weather device to say OK")
    setting_altitude_cutoff: float = Field(
        default=3.0,
        ge=0,
        le=30,
        description="Ekos' 'setting altitude cutoff' (its scheduler options; 3° by default): Ekos refuses a fixed "
        "start of a setting target less than this above the minimum altitude, so it is given a lower minimum",
    )
    keep_nights: int = Field(
        default=14,
        ge=1,
        le=3660,
        description="nights of Ekos files kept in output_dir: older night folders of .esl/.esq files are removed "
        "when a plan is written (the frames in fits_dir are never touched)",
    )
    keep_runs: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="unrequested runs of the night kept in output_dir: older ones are removed when a plan is "
        "written; a run written for a plan request, or loaded into Ekos by the MCP, is kept all night",
    )
    calibration: SchedulerCalibrationConfig = SchedulerCalibrationConfig()


class SchedulerConfig(ServiceSection):
    constraints: TargetConstraints = Field(
        default_factory=lambda: TargetConstraints(min_altitude=30, twilight="astronomical", min_time_on_target_min=15),
        description="defaults for every target; a target's own constraints override them key by key",
    )
    weights: SchedulerWeightsConfig = SchedulerWeightsConfig()
    ekos: SchedulerEkosConfig = SchedulerEkosConfig()
    grid_step_s: float = Field(default=120, ge=10, le=900, description="time step of the night grid")
    exposure_overhead_s: float = Field(default=5, ge=0, description="download and dither time per exposure")
    switch_overhead_s: float = Field(default=120, ge=0, description="slew, plate solve and guider start per target")
    switch_gap_s: float = Field(
        default=300, ge=0, description="free time before a block of another target: at least Ekos' lead time (5 min)"
    )
    max_block_min: float = Field(default=120, gt=0, description="longest block before the planner re-decides")
    replan_at: str = Field(default="12:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="daily, site time")
    transits: SchedulerTransitsConfig = SchedulerTransitsConfig()
