"""The night planner against astroplan's PriorityScheduler on the same targets, constraints and night.

For 10, 100 and 1,000 random targets (a fixed seed; 4 filters x 3 frames x 300 s each,
priorities 0..10) at Vienna on the night of 2026-11-21 (Moon 90 % lit), both planners get:
minimum altitude 30°, astronomical darkness, 30° from the Moon (applied also while the
Moon is down, as astroplan does), 5 s readout per frame, and a time grid of 120 s.

Printed per size: our planning time, the first plan in a new process and a re-plan with
the night cached (as the service re-plans), astroplan's time, the ratios of astroplan's
time to both of ours, and the filled fraction of the astronomically dark time: the
frames' time (exposure + readout) of every scheduled block over the dark hours, the same
measure for both.

What the times include: module imports are left out on both sides (a long-running
service pays them once). Everything else is counted: "first" is the first plan a fresh
Python process makes after importing the planner (the median of five processes), so
it carries every one-off cost (the night's Sun, Moon and sidereal time, the targets'
apparent places, first calls into ERFA and numpy); "cached" is the median of five
re-plans of the same night. astroplan gets one untimed warm-up schedule (two targets)
first, so that its timings do not carry astropy's one-off loading of the Earth
orientation tables; its time covers building the targets and blocks and scheduling.

astroplan is a bench-only dependency: ``pip install -e 'services/scheduler[bench]'``.
Its PriorityScheduler evaluates every target at every grid time in Python loops, so
the 1,000-target case takes minutes: it runs only with ``--full`` (or BENCH_FULL=1).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np

from obsy import astro
from obsy.config import SchedulerConfig, SiteConfig
from obsy.messages import ExposurePlan, Target, TargetConstraints
from obsy_scheduler.planner import Plan, Planner
from obsy_scheduler.sky import night_sky

SITE = SiteConfig(name="Vienna", latitude=48.2, longitude=16.4, elevation=180, timezone="Europe/Vienna")
NIGHT = date(2026, 11, 21)
MIN_ALTITUDE = 30.0
MOON_SEPARATION = 30.0
EXPOSURE_S = 300.0
FRAMES_PER_FILTER = 3
FILTERS = ("L", "R", "G", "B")
READOUT_S = 5.0
STEP_S = 120.0
SIZES = (10, 100, 1000)


def make_targets(count: int, seed: int = 8) -> list[Target]:
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, count)
    dec = np.degrees(np.arcsin(rng.uniform(-0.5, 1.0, count)))  # mostly the northern sky
    return [
        Target(
            id=f"t{i}",
            name=f"Target {i}",
            ra_deg=float(ra[i]),
            dec_deg=float(dec[i]),
            priority=int(rng.integers(0, 11)),
            exposure_plans=[ExposurePlan(filter=f, exposure_s=EXPOSURE_S, count=FRAMES_PER_FILTER) for f in FILTERS],
        )
        for i in range(count)
    ]


def our_settings() -> SchedulerConfig:
    return SchedulerConfig(
        constraints=TargetConstraints(
            min_altitude=MIN_ALTITUDE,
            twilight="astronomical",
            moon_separation=MOON_SEPARATION,
            moon_avoidance_when_down=True,
            min_time_on_target_min=0,
        ),
        grid_step_s=STEP_S,
        exposure_overhead_s=READOUT_S,
        switch_overhead_s=60.0,
    )


def frames_hours(plan: Plan) -> float:
    return sum(n * (p.exposure_s + READOUT_S) for b in plan.blocks for p, n in b.exposures) / 3600.0


def time_first_plan(count: int) -> None:
    """Print the seconds of the first plan this process makes (run in a fresh process)."""
    targets = make_targets(count)
    planner = Planner(SITE, our_settings())
    start = time.perf_counter()
    planner.plan(targets, NIGHT)
    print(time.perf_counter() - start)


def first_plan_in_new_process(count: int) -> float:
    """The first plan of a fresh Python process, imports done beforehand and not counted."""
    code = f"import bench.bench_scheduler as b; b.time_first_plan({count})"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def run_ours(targets: list[Target], processes: int = 5, replans: int = 5) -> tuple[float, float, Plan]:
    """(first plan in a new process, re-plan with the night cached, the plan), medians."""
    first = statistics.median(first_plan_in_new_process(len(targets)) for _ in range(processes))
    planner = Planner(SITE, our_settings())
    plan = planner.plan(targets, NIGHT)
    cached = []
    for _ in range(replans):
        start = time.perf_counter()
        plan = planner.plan(targets, NIGHT)
        cached.append(time.perf_counter() - start)
    return first, statistics.median(cached), plan


def run_astroplan(targets: list[Target]) -> tuple[float, float]:
    """astroplan's PriorityScheduler; returns (seconds, frames hours)."""
    import astropy.units as u
    from astroplan import (
        AltitudeConstraint,
        AtNightConstraint,
        FixedTarget,
        MoonSeparationConstraint,
        Observer,
        ObservingBlock,
        PriorityScheduler,
        Schedule,
        Transitioner,
    )
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    times = astro.twilight(SITE, NIGHT)
    observer = Observer(location=astro.location(SITE), name=SITE.name)
    constraints = [
        AltitudeConstraint(min=MIN_ALTITUDE * u.deg),
        AtNightConstraint.twilight_astronomical(),
        MoonSeparationConstraint(min=MOON_SEPARATION * u.deg),
    ]
    start = time.perf_counter()
    blocks = []
    for target in targets:
        fixed = FixedTarget(SkyCoord(target.ra_deg * u.deg, target.dec_deg * u.deg), name=target.id)
        for plan in target.exposure_plans:
            blocks.append(
                ObservingBlock.from_exposures(
                    fixed,
                    11 - target.priority,  # astroplan: lower is more important
                    plan.exposure_s * u.s,
                    plan.count,
                    READOUT_S * u.s,
                )
            )
    transitioner = Transitioner(slew_rate=0.8 * u.deg / u.s)
    scheduler = PriorityScheduler(
        constraints=constraints, observer=observer, transitioner=transitioner, time_resolution=STEP_S * u.s
    )
    schedule = Schedule(Time(times.astronomical_dusk), Time(times.astronomical_dawn))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler(blocks, schedule)
    elapsed = time.perf_counter() - start
    scheduled = [b for b in schedule.observing_blocks if isinstance(b, ObservingBlock)]
    hours = sum(b.duration.to_value(u.h) for b in scheduled)
    return elapsed, hours


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    full = "--full" in argv or os.environ.get("BENCH_FULL") == "1"
    try:
        import astroplan  # noqa: F401

        have_astroplan = True
    except ImportError:
        have_astroplan = False
        print("astroplan is not installed (pip install -e 'services/scheduler[bench]'): our planner only")
    if have_astroplan:
        run_astroplan(make_targets(2))  # warm-up, untimed
    sky = night_sky(SITE, NIGHT, STEP_S)
    dark_hours = float((sky.sun_alt < astro.ASTRONOMICAL).sum()) * STEP_S / 3600.0
    print(f"night {NIGHT} at {SITE.name}: {dark_hours:.2f} h astronomically dark, Moon {sky.moon_illumination:.0%} lit")
    columns = (("targets", 7), ("ours first", 10), ("ours cached", 11), ("filled", 7), ("astroplan", 10))
    print(" ".join(f"{name:>{width}}" for name, width in columns) + f" {'filled':>7} {'ratio first':>11} {'cached':>7}")
    for size in SIZES:
        targets = make_targets(size)
        cold, warm, plan = run_ours(targets)
        ours_filled = frames_hours(plan) / dark_hours
        line = f"{size:>7} {cold * 1e3:>7.1f} ms {warm * 1e3:>8.1f} ms {ours_filled:>7.1%}"
        if have_astroplan and (size < 1000 or full):
            elapsed, hours = run_astroplan(targets)
            line += f" {elapsed:>9.2f}s {hours / dark_hours:>7.1%} {elapsed / cold:>10.0f}x {elapsed / warm:>6.0f}x"
        elif have_astroplan:
            line += f" {'(--full)':>10}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
