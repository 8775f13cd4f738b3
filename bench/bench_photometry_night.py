"""A simulated night of a variable star through the photometry: the issue's figures (issue 19).

Sky-simulator frames (1024 × 768, 26′, 30 s) of a scripted sine variable (11.5 mag, amplitude 0.3,
period 3 h; RA 359.97°, Dec −11.97°, a field across RA 0h south of the equator), calibrated with the
simulator's known answers and written with a header WCS, measured one after another by
:func:`~obsy_imaging.photometry.reduce.reduce_frame` (what the service's photometry thread calls)
against a VSP chart of the simulator's catalogue stars (a 4-star ensemble and a check star), and
the AAVSO report of the night. Printed: the reduction's seconds per frame and for the night, the
share of points within 1σ and 2σ of the truth, the median absolute error (all points, and those with
SNR ≥ 100), the check star's scatter against its error, the report's validation.

    python -m bench bench_photometry_night            # 60 frames
    python -m bench bench_photometry_night --full     # 300 frames (the issue's night)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np


def main() -> None:
    from obsy_imaging.headers.normalise import Site as HeaderSite
    from obsy_imaging.photometry.aavso import ReportHeader, validate_report, write_report
    from obsy_imaging.photometry.reduce import aavso_observation, reduce_frame
    from obsy_imaging.photometry.vsp import chart_sequence, parse_chart_json
    from obsy_skysim.allsky import Site
    from obsy_skysim.field import FieldRenderer, TelescopeOptics
    from obsy_skysim.scenario import Scenario, SineVariable
    from obsy_skysim.sensor import SensorSpec
    from tests.integration.imaging.test_imaging_photometry_service import chart_json
    from tests.support.photometry import noise_of, write_light
    from tests.support.skysim import SITE

    count = 300 if "--full" in sys.argv else 60
    evening = datetime(2026, 10, 15, 18, 30, tzinfo=UTC)
    variable = SineVariable(
        name="V1 Psc (test)", ra=359.97, dec=-11.97, kind="sine", mag=11.5, amplitude=0.3, period_h=3.0, epoch=evening
    )
    renderer = FieldRenderer(
        Site(*SITE),
        SensorSpec(width=1024, height=768, pixel_um=3.76, bayer=None),
        TelescopeOptics(limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5),
    )
    scenario = Scenario(variables=[variable])
    step = timedelta(seconds=60)  # 30 s frames, 30 s of download, dithering and such between them
    noise = noise_of(renderer, 0.0, 30.0, calibrated=True)
    with tempfile.TemporaryDirectory(prefix="obsy-photometry-night-") as folder:
        started = time.perf_counter()
        paths, frames = [], []
        for i in range(count):
            frame = renderer.render(evening + i * step, (0.0, -12.0), 30.0, 0.0, scenario=scenario, seed=1000 + i)
            frames.append(frame)
            paths.append(
                write_light(Path(folder) / f"light_{i:03d}.fits", renderer, frame, with_wcs=True, calibrated=True)
            )
        rendered = time.perf_counter() - started
        chart, use, check = chart_json(renderer, frames[0])
        sequence = chart_sequence(
            parse_chart_json(json.dumps(chart), source="chart"),
            band="V",
            target="V1 Psc",
            check=check,
            comparisons=use,
        )
        site = HeaderSite(*SITE)
        seconds, reduced = [], []
        cpu = time.process_time()
        for path in paths:
            t0 = time.perf_counter()
            reduced.append(reduce_frame(path, sequence, noise, site=site, saturation_adu=25000.0))
            seconds.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu
    ok = [r for r in reduced if r.magnitudes.mag is not None]
    truth = np.array(
        [
            variable.magnitude(f.when + timedelta(seconds=15))
            for f, r in zip(frames, reduced, strict=True)
            if r.magnitudes.mag is not None
        ]
    )
    mags = np.array([r.magnitudes.mag for r in ok])
    errors = np.array([r.magnitudes.mag_err for r in ok])
    snr = np.array([r.magnitudes.target.snr for r in ok])
    residual = mags - truth
    checks = np.array([r.magnitudes.check_residual for r in ok if r.magnitudes.check_residual is not None])
    check_errors = np.array([r.magnitudes.check_err for r in ok if r.magnitudes.check_residual is not None])
    bright = snr >= 100
    report = write_report(ReportHeader("TST01", "OBSY bench"), [aavso_observation(r, sequence, band="V") for r in ok])
    print(f"frames: {count} rendered and written in {rendered:.1f} s; {len(ok)} with a magnitude")
    print(
        f"reduction: {np.median(seconds) * 1000:.0f} ms per frame (median; max {max(seconds) * 1000:.0f} ms), "
        f"{sum(seconds):.1f} s for the night ({cpu:.1f} s of CPU time; one thread, as the service's)"
    )
    print(
        f"within 1σ {np.mean(np.abs(residual) <= errors):.0%}, within 2σ {np.mean(np.abs(residual) <= 2 * errors):.0%}"
        f" (issue: ≥ 95 % within their errors), residual mean {residual.mean():+.4f}"
        f" RMS {np.sqrt(np.mean(residual**2)):.4f}"
    )
    print(
        f"median |residual| {np.median(np.abs(residual)):.4f} mag (SNR ≥ 100: {bright.sum()} points, "
        f"{np.median(np.abs(residual[bright])) if bright.any() else float('nan'):.4f}; issue: ≤ 0.02), "
        f"median error {np.median(errors):.4f}, target SNR {np.median(snr):.0f}"
    )
    print(
        f"check star: residual mean {checks.mean():+.4f}, scatter {checks.std():.4f} against a median error "
        f"{np.median(check_errors):.4f} (within 2σ {np.mean(np.abs(checks - checks.mean()) <= 2 * check_errors):.0%})"
    )
    print(f"AAVSO report: {len(ok)} lines, problems: {validate_report(report) or 'none'}")
