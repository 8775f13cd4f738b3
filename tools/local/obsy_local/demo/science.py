"""The demo's night of science: the sky simulator's science night (``obsy_skysim.science``) written at
the demo's start for its site, and the configuration that observes, reduces and reports it.

* the main camera renders the night's scenario (the launcher puts it into the simulator's settings):
  ``SIM-V1``, a variable of 24 min period, and ``SIM-T1``, whose planet ``SIM-T1 b`` transits
  20 min after the start for 4 min (:func:`demo_settings`: time for the services, KStars and the roof);
* ``scheduler.transits`` plans the transit from the night's ephemeris (a short baseline either side);
* ``imaging.photometry`` measures the variable against its own comparison stars, ``imaging.transits``
  fits the transit; both plate-solve with the night's index. The lights are calibrated with the bias
  and darks the LRGB target takes first (Ekos takes them with the camera's shutter); the demo's
  calibration does not wait for flats (none are taken), so results come during the demo;
* the three targets: the transit (named as the planet), the variable as a time series, and an LRGB
  target: the catalogue's nebula highest now (at least 45° up; else its highest object), whose stars
  are what the simulator draws (it renders no nebulae).

Ekos turns a filter wheel here (:mod:`obsy_local.demo.setup`): INDI's ``indi_simulator_wheel``, whose
slot the sky simulator's camera follows and whose names it writes as the frames' ``FILTER``; the
scheduler maps L, R, G and B onto its Luminance, Red, Green and Blue. Without a wheel the LRGB target
is taken in one filter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from obsy.config import ObsyConfig

log = logging.getLogger("obsy_local.demo.science")

#: Where the night's files go, under the demo's data folder.
SCIENCE_DIR = "science"
#: The observer code of the demo's reports when the user's configuration has none.
DEMO_OBSERVER_CODE = "OBSYDEMO"
#: The simulator's filter wheel and its names (slot order).
#: Bias frames and darks the LRGB target takes first (the imaging service builds a master from five).
CALIBRATION_FRAMES = 5
BIAS_EXPOSURE_S = 0.01
#: The scheduler's time for a change of target (``switch_overhead_s``; 120 s by default, for a slew, plate
#: solving and the guider): the demo's jobs only track, and the first frame came 15 to 20 s after a job's start.
SWITCH_OVERHEAD_S = 30.0
#: The LRGB target's minimum time on target, after the switch overhead (the scheduler's default is 15 min):
#: its first block holds the bias and darks (5 x 5 s and 5 x 15 s with the scheduler's exposure overhead).
NEBULA_MIN_TIME_MIN = 2.5
#: The scheduler's free time before and after a block of another target (``switch_gap_s``, Ekos' lead time).
SWITCH_GAP_MIN = 5.0
#: The demo's night, in minutes after its start (:func:`demo_settings`). Here the MCP reported "observing"
#: (services, KStars, the weather's 30 s safe delay, the clear-sky gate's allsky frames, 10 s of roof travel)
#: 2.0 to 2.2 min after the start, and the night is planned then: the LRGB target's first block at the plan's
#: next 2-min step, a switch gap before the transit's block, which starts the switch overhead, 3 sigma of the
#: ephemeris (0.9 min) and the baseline before the first contact. With the first contact at 18 min
#: "observing" may come as late as 5 min (tests/unit/local/test_demo_timeline.py). The transit's block
#: (about 10 min: 46 frames of 10 s in a run here; ``imaging.transits.min_points`` is 30) ends at 25 min, its fit a
#: minute later.
TIMELINE_MIN = {"transit_mid": 20.0, "transit_duration": 4.0, "baseline": 2.0}


@dataclass
class DemoScience:
    """The demo's science night and what it sets in the demo's configuration."""

    night: Any  # obsy_skysim.science.ScienceNight
    overrides: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def scenario(self) -> Path:
        return self.night.scenario


def demo_settings() -> Any:
    """The science night's settings for the demo: a compressed timeline that ends in results within about
    25 min of the start (:data:`TIMELINE_MIN`). The simulators run in real time (docs/operations.md, "The
    demo"), so the demo's night is short instead: the transit early and short, the LRGB target's bias and
    darks before it, the variable's own visits after it."""
    from obsy_skysim.science import ScienceNightSettings

    t = TIMELINE_MIN
    transit_end = t["transit_mid"] + t["transit_duration"] / 2 + t["baseline"]
    return ScienceNightSettings(
        transit_mid_min=t["transit_mid"],
        transit_duration_min=t["transit_duration"],
        baseline_min=t["baseline"],
        # After the transit: visits of their own (a cadence longer than a visit and the scheduler's switch gap
        # around it, 7.75 min with its defaults). Before it the LRGB target, with the darks and bias that the
        # science frames are calibrated with, and the transit's frames, which hold the variable too.
        cadence_min=8.0,
        series_start_min=transit_end + SWITCH_GAP_MIN,
        series_window_min=90.0,
        # The science frames' exposure: the darks the LRGB target takes first are of it, and a master dark is
        # only scaled down to a light's exposure (20 s lights waited all night for a 20 s dark in a demo run).
        nebula_exposure_s=ScienceNightSettings.exposure_s,
        nebula_count=10,
    )


def write_demo_science(config: ObsyConfig, folder: Path, now: datetime, *, wheel: bool) -> DemoScience:
    """The science night for the demo's site at ``now`` in ``folder``, and the configuration sections that
    use it (merged over the demo's). ``wheel``: the LRGB target in four filters (else in one)."""
    from obsy_local.demo.targets import CANDIDATES, NEBULAE, high_targets
    from obsy_local.launcher import skysim_settings
    from obsy_skysim.allsky import Site
    from obsy_skysim.config import MainCameraSettings
    from obsy_skysim.index import IndexBuildError
    from obsy_skysim.science import write_science_night

    site = Site(config.site.latitude, config.site.longitude, config.site.elevation)
    camera = MainCameraSettings.model_validate((skysim_settings(config) or {}).get("camera") or {})
    settings = demo_settings()
    if not wheel:
        settings = replace(settings, nebula_filters=("L",))
    highest = high_targets(site.latitude, site.longitude, now, count=1, names=NEBULAE) or high_targets(
        site.latitude, site.longitude, now, count=1
    )
    nebula = (highest[0].name, *CANDIDATES[highest[0].name]) if highest else None
    notes = []
    try:
        night = write_science_night(folder, site, now, camera, settings=settings, nebula=nebula)
    except IndexBuildError as error:
        notes.append(f"no index of the science fields ({error}): photometry and transits will not plate-solve")
        night = write_science_night(folder, site, now, camera, settings=settings, nebula=nebula, index=False)
    code = config.imaging.photometry.observer_code or config.imaging.transits.observer_code or DEMO_OBSERVER_CODE
    fragments = night.config
    imaging = fragments["imaging"]
    overrides = {
        # Ekos' jobs here only track (no plate solving, no guiding) and the simulator slews in seconds.
        "scheduler": {**fragments["scheduler"], "switch_overhead_s": SWITCH_OVERHEAD_S},
        "imaging": {
            "calibration": {"require_flat": False},
            "photometry": {**imaging["photometry"], "enabled": True, "observer_code": code},
            "transits": {
                **imaging["transits"],
                "enabled": True,
                "observer_code": code,
                "camera": camera.device,
                "quiet_time": 60,
            },
        },
    }
    return DemoScience(night, overrides, notes)


def target_bodies(science: DemoScience) -> list[dict[str, Any]]:
    """The three targets for the web API; the LRGB one by its catalogue name (the web looks it up), first
    taking the bias frames and the darks of the science frames' exposure (``CALIBRATION_FRAMES`` each):
    the imaging service calibrates every light with them (a dark scaled by the bias for other exposures)
    before it measures the variable or the transit."""
    bodies = [dict(body) for body in science.night.targets]
    exposure = science.night.targets[0]["exposure_plans"][0]["exposure_s"]
    calibration = [
        {"frame_type": "Bias", "exposure_s": BIAS_EXPOSURE_S, "count": CALIBRATION_FRAMES},
        {"frame_type": "Dark", "exposure_s": exposure, "count": CALIBRATION_FRAMES},
    ]
    bodies[-1] = {
        **bodies[-1],
        "exposure_plans": calibration + bodies[-1]["exposure_plans"],
        # The time before the transit's block (and the scheduler's switch gap) is short: use it.
        "constraints": {"min_time_on_target_min": NEBULA_MIN_TIME_MIN},
    }
    nebula = bodies[-1]
    if not nebula["name"].startswith("SIM-"):
        bodies[-1] = {k: v for k, v in nebula.items() if k not in ("name", "ra_deg", "dec_deg")}
        bodies[-1]["catalogue_name"] = nebula["name"]
    return bodies
