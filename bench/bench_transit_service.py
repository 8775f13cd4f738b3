"""A whole transit night as the imaging service does it: 300 calibrated sky-simulator lights of a
scripted transit (``tests/support/transits.py``, 500 × 500 px, 60 s) in a repository on SQLite,
reduced (plate solution from the header WCS, the automatic ensemble, aperture photometry), fitted
(emcee 24 × 1500), stored with every point, and the report, plot and CSV written:
``Transiter.process``. Target (issue 20): the whole reduction of a 300-frame night in under
2 minutes on 2 cores. Rendering the frames is not timed.

    python -m bench bench_transit_service [--frames N]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

from obsy.config import ImagingTransitsConfig, SchedulerTransitsConfig, SiteConfig
from obsy_imaging.repository import database
from obsy_imaging.repository.store import Repository
from obsy_imaging.transiter import Transiter, reduce_with_library
from tests.support.skysim import SITE
from tests.support.transits import night_ephemeris, transit_host, write_transit_night
from tests.unit.imaging.test_imaging_transiter import COLUMNS, NIGHT, add_lights

logging.getLogger("emcee").setLevel(logging.ERROR)


def archive_row(e) -> str:
    return (
        f"{e.name},SIM-T1,{e.t0:.6f},{e.t0_err},{-e.t0_err},BJD-TDB,{e.period},{e.period_err},{-e.period_err},"
        f"{e.rp_rs},0.002,-0.002,{e.a_rs},{e.a_rs_err},{-e.a_rs_err},{e.inc},{e.inc_err},{-e.inc_err},"
        f"{e.ra},{e.dec},5800,1"
    )


def main() -> None:
    frames = int(sys.argv[sys.argv.index("--frames") + 1]) if "--frames" in sys.argv else 300
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        night = write_transit_night(root / "repository" / "calibrated", seed=11, frames=frames)
        rendered = time.perf_counter() - started
        for i, path in enumerate(night.paths, start=1):  # where the repository's rows say they are
            path.rename(path.with_name(f"{i}.fits"))
        engine = database.make_engine(f"sqlite:///{root / 'imaging.sqlite3'}")
        database.upgrade(engine)
        repository = Repository(engine, root / "repository", root / "quarantine")
        add_lights(repository, [night.tc_bjd + (i - frames / 2) / 1440 for i in range(frames)], target="SIM-T1")
        ephemeris = night_ephemeris(transit_host())
        csv = root / "planets.csv"
        csv.write_text(COLUMNS + "\n" + archive_row(ephemeris) + "\n")
        settings = ImagingTransitsConfig(
            enabled=True,
            observer_code="TST01",
            ephemeris_file=csv,
            gain_e_per_adu=night.noise.gain_e_per_adu,
            read_noise_e=night.noise.read_noise_e,
            saturation_adu=night.saturation_adu,
        )
        reduce_seconds: list[float] = []

        def timed_reduction(paths, eph, site):
            t = time.perf_counter()
            try:
                return reduce_with_library(paths, eph, site, settings=settings)
            finally:
                reduce_seconds.append(time.perf_counter() - t)

        transiter = Transiter(
            repository, settings, SchedulerTransitsConfig(), SiteConfig(latitude=SITE[0], longitude=SITE[1]),
            reducer=timed_reduction,
        )  # fmt: skip
        started = time.perf_counter()
        done = transiter.process(NIGHT, ephemeris.name)
        total = time.perf_counter() - started
        engine.dispose()
    row = done.row
    print(f"  {frames} frames rendered in {rendered:.0f} s (not part of the figure)")
    if row.status != "fitted":
        print(f"  no fit: {row.reason}")
        return
    print(
        f"  Transiter.process of {frames} frames: {total:.1f} s in all (reduction {reduce_seconds[0]:.1f} s, "
        f"fit, storing and files {total - reduce_seconds[0]:.1f} s); target < 120 s"
    )
    print(
        f"  Tc − truth {(row.tc - night.tc_bjd) * 86400:+.0f} s (σ {row.tc_err * 86400:.0f} s), depth "
        f"{100 * row.depth:.3f} ± {100 * row.depth_err:.3f} % (truth {100 * night.depth:.3f} %), "
        f"{row.points_used} points used, ensemble of {row.ensemble_size}"
    )
