"""Meteor and satellite detection against the sky simulator's truth.

Streaks (meteors fading along their track, steady satellites, blinking aircraft) of several
brightnesses, lengths and angles are injected into the light of rendered 640×480 night frames
before read-out; decoys are frame pairs without streaks: noise and the stars' drift alone,
scattered clouds and a cloud bank moving with a 25 m/s wind (their glow makes bright edges and
filaments that move), a bright planet that moves 2 to 8 px between frames, and transient hot
pixels. Figures are printed (``-s``); the thresholds are the issue's: recall ≥ 90 % for streaks
above 5σ, at most 1 false detection per 100 decoy frames.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from obsy_allsky.backend import NumpyBackend, cupy_status
from obsy_allsky.streaks import StreakDetector, StreakSettings, classify_profile, crop_png
from obsy_allsky.streaks.detect import Streak, _merge
from obsy_skysim.clouds import make_clouds
from obsy_skysim.stars import add_point_sources
from tests.support import streaks as st

SNRS = (5.0, 7.0, 10.0, 20.0)


@pytest.fixture(scope="module")
def sim():
    r = st.renderer()
    lens = r.lens
    yy, xx = np.mgrid[0 : st.SMALL.height, 0 : st.SMALL.width]
    circle = np.hypot(xx - lens.zenith_x, yy - lens.zenith_y) < lens.horizon_radius(0.0)
    return r, circle


def _pair(r, circle, before: np.ndarray, after: np.ndarray, seed: int, *, backend=None) -> list[Streak]:
    detector = StreakDetector(lens=r.lens, circle=circle, backend=backend)
    assert detector.process(st.read_out(r, before, seed), st.EXPOSURE_S) == []  # the first frame has no reference
    return detector.process(st.read_out(r, after, seed + 1), st.EXPOSURE_S)


def _injected(sim):
    """(track, found streaks) for 84 streaks: 12 moments × (meteors, satellites, aircraft) × brightnesses."""
    r, circle = sim
    rng = np.random.default_rng(2024)
    results = []
    for i, (t0, t1) in enumerate(st.moments(12, start=st.NIGHT)):
        before, after = st.light(r, t0), st.light(r, t1)
        for j in range(7):
            kind = ("meteor", "meteor", "meteor", "satellite", "satellite", "aircraft", "aircraft")[j]
            length = rng.uniform(30, 80) if kind == "meteor" else rng.uniform(150, 300)
            snr = SNRS[(i + j) % len(SNRS)]
            track = st.random_track(r, kind, length, snr, rng)
            noise = st.pixel_noise(r, after, 0.5 * (track.x0 + track.x1), 0.5 * (track.y0 + track.y1))
            light = after.copy()
            st.add_track(light, track, snr * noise, rng)
            results.append((track, _pair(r, circle, before, light, 10_000 + 10 * (7 * i + j))))
    return results


@pytest.mark.slow
def test_streaks_above_5_sigma_are_found_and_classified(sim) -> None:
    results = _injected(sim)
    found, right, strays = 0, 0, 0
    by_snr: dict[float, list[int]] = {}
    confusion: dict[tuple[str, str | None], int] = {}
    for track, streaks in results:
        on = [s for s in streaks if st.on_track(s, track, 4.0)]
        hit = [s for s in on if s.length_px > 0.3 * track.length]
        strays += len(streaks) - len(on)
        found += bool(hit)
        by_snr.setdefault(track.snr, []).append(bool(hit))
        truth = "meteor" if track.kind == "meteor" else "satellite"  # aircraft are in the satellite class
        got = hit[0].kind if hit else None
        confusion[(track.kind, got)] = confusion.get((track.kind, got), 0) + 1
        right += got == truth
    recall = found / len(results)
    accuracy = right / max(found, 1)
    print(
        f"\nstreaks: recall {recall:.1%} ({found}/{len(results)}), by brightness "
        + ", ".join(f"{k:g}σ {np.mean(v):.0%}" for k, v in sorted(by_snr.items()))
        + f"; classification {accuracy:.1%} of those found; confusion {confusion}; {strays} stray detections"
    )
    assert recall >= 0.90
    assert accuracy >= 0.85
    # The issue's false-detection rate (at most 1 per 100 frames) is the decoys' test below; at that rate
    # these 84 frames may hold one stray (near the threshold: 14 px, 8σ, near the horizon). Measured over
    # 7 sets of noise seeds: NumPy's former read-out noise gave 0 strays in all, the fused read-out's 1 in
    # 2 of them; in 1200 plain frame pairs the former gave 2 false detections, the fused 0: the same rate.
    assert strays <= 1


@pytest.mark.slow
@pytest.mark.long(seconds=140)
def test_decoys_give_at_most_one_false_detection_per_100_frames(sim) -> None:
    r, circle = sim
    rng = np.random.default_rng(77)
    lens = r.lens
    false, pairs = 0, 0
    per_kind: dict[str, int] = {}
    for i, (t0, t1) in enumerate(st.moments(12, start=st.NIGHT)):
        for kind in ("plain", "scattered", "bank", "planet", "hot"):
            clouds, elapsed = None, 0.0
            if kind in ("scattered", "bank"):
                clouds, elapsed = make_clouds(kind, cover_percent=40, wind_speed=25, seed=i + 100), 600.0 * i
            before, after = st.light(r, t0, clouds, elapsed), st.light(r, t1, clouds, elapsed + st.INTERVAL_S)
            for _ in range(2):
                a, b = before.copy(), after.copy()
                if kind == "planet":  # brighter than Jupiter, moving far faster than a planet does
                    x, y = lens.zenith_x + rng.uniform(-150, 150), lens.zenith_y + rng.uniform(-150, 150)
                    step, angle = rng.uniform(2, 8), rng.uniform(0, 2 * math.pi)
                    flux, width = np.array([3e5]), np.array([1.0])
                    add_point_sources(a, np.array([x]), np.array([y]), flux, width)
                    add_point_sources(
                        b, np.array([x + step * math.cos(angle)]), np.array([y + step * math.sin(angle)]), flux, width
                    )
                if kind == "hot":  # cosmic rays and flickering pixels: one frame only
                    hx, hy = rng.integers(0, st.SMALL.width, 40), rng.integers(0, st.SMALL.height, 40)
                    b[hy, hx] += rng.uniform(300, 5000, 40).astype(np.float32)
                streaks = _pair(r, circle, a, b, 50_000 + 10 * pairs)
                pairs += 1
                false += len(streaks)
                per_kind[kind] = per_kind.get(kind, 0) + len(streaks)
    print(f"\ndecoys: {false} false detections in {pairs} frame pairs ({per_kind})")
    assert pairs >= 100
    assert false <= pairs / 100


@pytest.mark.slow
def test_streaks_as_wide_as_a_bright_meteor_are_found_and_blurred_ones_are_not(sim) -> None:
    """A line of Gaussian width 2 px (FWHM 4.7 px: a bright meteor on a small frame) is a streak; one of
    4 px and more (an insect close to the lens, out of focus; a cloud filament) is not."""
    r, circle = sim
    rng = np.random.default_rng(8)
    found: dict[float, int] = {}
    for width in (2.0, 4.0, 6.0):
        found[width] = 0
        for k, (t0, t1) in enumerate(st.moments(8, start=st.NIGHT)):
            before, after = st.light(r, t0), st.light(r, t1)
            track = st.random_track(r, "satellite", rng.uniform(60, 200), 10.0, rng)
            st.add_track(after, track, 20.0 * st.pixel_noise(r, after, track.x0, track.y0), rng, width=width)
            found[width] += bool(_pair(r, circle, before, after, 70_000 + 10 * k))
    print(f"\nwide streaks found (of 8) by Gaussian width in px: {found}")
    assert found[2.0] >= 7
    assert found[4.0] == found[6.0] == 0


def test_a_first_frame_or_a_new_exposure_gives_nothing_and_sets_the_reference() -> None:
    rng = np.random.default_rng(1)
    frame = rng.normal(1000, 10, (200, 300)).astype(np.uint16)
    detector = StreakDetector()
    assert detector.process(frame, 10.0) == []
    streaked = rng.normal(1000, 10, (200, 300)).astype(np.uint16)  # the next frame: new noise and a line
    cv2.line(streaked, (40, 40), (200, 120), 1300, 2)
    assert detector.process(streaked, 20.0) == []  # another exposure: no difference taken
    detector.reset()
    assert detector.process(frame, 10.0) == []
    found = detector.process(streaked, 10.0)
    assert len(found) == 1
    s = found[0]
    assert {round(s.x0), round(s.x1)} <= set(range(36, 45)) | set(range(196, 205))
    assert s.kind == "satellite"  # steady
    assert s.alt0 is None  # no lens: pixels only


def test_the_bin_is_about_2000_px_wide_and_whole_bayer_cells() -> None:
    assert [StreakDetector().binning_for(w) for w in (640, 3856, 4144, 6248)] == [1, 2, 2, 3]
    assert [StreakDetector(bayer=True).binning_for(w) for w in (640, 3856, 6248)] == [2, 2, 4]
    assert StreakDetector(StreakSettings(binning=3), bayer=True).binning_for(640) == 3  # as configured


def test_a_streak_in_a_small_bayer_frame_is_found() -> None:
    rng = np.random.default_rng(4)
    level = np.tile(np.array([[600, 1000], [1000, 400]], dtype=np.float64), (120, 160))  # RGGB, 240 x 320
    frames = [rng.normal(level, np.sqrt(level)).astype(np.uint16) for _ in range(2)]
    line = np.zeros((240, 320), np.float32)
    cv2.line(line, (30, 200), (280, 60), 1.0, 3)
    frames[1] = (frames[1] + 300 * line).astype(np.uint16)
    detector = StreakDetector(bayer=True)
    detector.process(frames[0], 10.0)
    found = detector.process(frames[1], 10.0)
    assert len(found) == 1
    assert abs(found[0].length_px - math.hypot(250, 140)) < 12


def test_the_profile_decides_the_class() -> None:
    settings = StreakSettings()
    t = np.linspace(0, 1, 12)
    fading = np.where(t < 0.6, t / 0.6, (1 - t) / 0.4) + 0.05
    assert classify_profile(fading, 20.0, 0.1, settings)[0] == "meteor"
    assert classify_profile(np.full(12, 5.0), 20.0, 0.1, settings)[0] == "satellite"
    blinking = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1], dtype=float)
    kind, _, _, blinks = classify_profile(blinking, 20.0, 0.1, settings)
    assert (kind, blinks) == ("satellite", 3)
    assert classify_profile(fading, 80.0, 0.1, settings)[0] == "satellite"  # too long for a meteor
    assert classify_profile(fading, None, 0.5, settings)[0] == "satellite"  # no lens: share of the width


def test_collinear_pieces_merge_and_crossing_lines_do_not() -> None:
    pieces = np.array([[0, 0, 30, 0], [35, 0.5, 60, 1], [100, 1.5, 120, 2], [50, -20, 50, 20]], dtype=float)
    tracks = sorted(_merge(pieces, 4.0), key=lambda t: t[0])
    assert len(tracks) == 2
    assert tracks[0][2] == pytest.approx(120, abs=1)  # the dashed line as one track
    assert tracks[1][0] == pytest.approx(50)


def test_the_crop_is_a_png_around_the_track() -> None:
    image = np.zeros((400, 600, 3), dtype=np.float32)
    cv2.line(image, (100, 120), (180, 160), (1.0, 0.5, 0.2), 2)
    streak = Streak("meteor", 200.0, 240.0, 360.0, 320.0, 179.0, 20.0, 0.4, 0.2, 0)
    png = crop_png(image, streak, margin=10, scale=0.5)
    crop = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape[:2] == (40 + 21, 80 + 21)
    assert crop.max() > 200


def test_the_detector_runs_the_same_on_the_gpu_backend(sim) -> None:
    cupy, reason = cupy_status()
    if cupy is None:
        pytest.skip(f"no GPU backend: {reason}")
    from obsy_allsky.backend import CupyBackend

    r, circle = sim
    rng = np.random.default_rng(5)
    t0, t1 = st.moments(1)[0]
    before, after = st.light(r, t0), st.light(r, t1)
    track = st.random_track(r, "satellite", 200.0, 10.0, rng)
    st.add_track(after, track, 10.0 * st.pixel_noise(r, after, track.x0, track.y0), rng)
    cpu = _pair(r, circle, before, after, 9, backend=NumpyBackend())
    gpu = _pair(r, circle, before, after, 9, backend=CupyBackend(cupy))
    assert len(cpu) == len(gpu) == 1
    assert gpu[0].kind == cpu[0].kind
    assert np.allclose(
        [gpu[0].x0, gpu[0].y0, gpu[0].x1, gpu[0].y1], [cpu[0].x0, cpu[0].y0, cpu[0].x1, cpu[0].y1], atol=1.5
    )
