"""Plans for the tests that run them in the real KStars/Ekos (:mod:`tests.support.kstars`).

The site is Vienna, a city of KStars' own list (``tests.support.kstars.VIENNA_CITY``, where
``ekos_running`` puts KStars), so that the plan and KStars agree on the place and its time zone.

API::

    zenith_ra(moment)                       # RA (degrees) on Vienna's meridian at moment
    one_block_plan(target, exposures, start, end)
                                            # a Plan of one block near the zenith (no twilight rule)
    run_now_settings(**overrides)           # Ekos settings: start at once, end with the sequence
    catalogue_targets(entries, plans)       # Targets t0, t1, ... of (name, RA, Dec)
    circumpolar_targets(priority, count)    # four targets up all night in Vienna
    wait_until_scheduled(kstars, jobs, after)
                                            # Ekos' log says each job starts at its planned time
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import astropy.units as u
from astropy.time import Time

from obsy.config import SchedulerEkosConfig, SiteConfig
from obsy.messages import ExposurePlan, Target, TargetConstraints
from obsy_scheduler.ekos import EkosJob
from obsy_scheduler.planner import Block, Plan
from tests.support.kstars import KStars

#: The site of the plans: Vienna, where ``ekos_running`` puts KStars (``VIENNA_CITY``) by default.
VIENNA = SiteConfig(name="Vienna", latitude=48.2, longitude=16.37, elevation=170, timezone="Europe/Vienna")


def zenith_ra(moment: datetime, site: SiteConfig = VIENNA) -> float:
    """The right ascension (degrees) on the site's meridian at ``moment`` (mean sidereal time)."""
    return Time(moment).sidereal_time("mean", longitude=site.longitude * u.deg).to_value(u.deg) % 360.0


def one_block_plan(target: Target, exposures: list[tuple[ExposurePlan, int]], start: datetime, end: datetime) -> Plan:
    """A plan of one block of ``target`` (near the zenith) from ``start`` to ``end``.

    The block asks only for 20° of altitude and civil twilight: tests run it now, usually by day.
    """
    block = Block(
        target=target,
        constraints=TargetConstraints(min_altitude=20, twilight="civil"),
        start=start,
        end=end,
        exposures=exposures,
        expected_altitude=90.0,
        min_altitude=85.0,
        required_moon_separation=0.0,
        score=1.0,
    )
    return Plan(
        night=start.date(),
        blocks=[block],
        excluded={},
        dark_start=None,
        dark_end=None,
        dark_hours=0.0,
        filled_fraction=0.0,
        moon_illumination=0.0,
    )


def run_now_settings(**overrides: object) -> SchedulerEkosConfig:
    """Ekos settings for a schedule that starts at once and ends with its sequence: tracking, the
    mount unparked first, no weather check and no shutdown; ``overrides`` replace any of them."""
    values: dict[str, object] = {
        "startup": "asap",
        "completion": "sequence",
        "enforce_weather": False,
        "steps": ["Track"],
        "startup_procedure": ["UnparkMount"],
        "shutdown_procedure": [],
    }
    values.update(overrides)
    return SchedulerEkosConfig.model_validate(values)


def catalogue_targets(entries: Iterable[tuple[str, float, float]], plans: list[ExposurePlan]) -> list[Target]:
    """Targets ``t0``, ``t1``, ... of ``(name, RA, Dec)`` entries, each taking ``plans``: priorities
    5, 6 and 7 in turn, and every second target with a Moon avoidance (60°, width 7 days)."""
    return [
        Target(
            id=f"t{i}",
            name=name,
            ra_deg=ra,
            dec_deg=dec,
            priority=5 + i % 3,
            exposure_plans=plans,
            constraints={"moon_avoidance_distance": 60, "moon_avoidance_width": 7} if i % 2 else {},
        )
        for i, (name, ra, dec) in enumerate(entries)
    ]


def circumpolar_targets(priority: int, count: int) -> list[Target]:
    """Four targets at Dec +78° (up all night in Vienna), RA 0° to 270°, each of ``count`` 300 s Red
    frames, after nautical twilight and above 30°."""
    return [
        Target(
            id=f"c{i}",
            name=f"Circumpolar {i}",
            ra_deg=ra,
            dec_deg=78.0,
            priority=priority,
            exposure_plans=[ExposurePlan(filter="Red", exposure_s=300, count=count)],
            constraints={"twilight": "nautical", "min_altitude": 30},
        )
        for i, ra in enumerate((0.0, 90.0, 180.0, 270.0))
    ]


def wait_until_scheduled(
    kstars: KStars, jobs: Sequence[EkosJob], after: int, site: SiteConfig = VIENNA, timeout: float = 60
) -> None:
    """Wait until KStars' log (from character ``after``) says each job is scheduled to start at its
    planned start, in the site's local time (KStars is at the site)."""
    zone = ZoneInfo(site.timezone)
    for job in jobs:
        local = job.start.astimezone(zone).strftime("%d/%m %H:%M")
        kstars.wait_for_log(rf"Job '{job.name}' is scheduled to start at {local}", timeout=timeout, after=after)
