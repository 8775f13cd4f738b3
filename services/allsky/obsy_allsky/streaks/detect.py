"""Streak detection: meteors and satellites in night frames.

Each night frame (the raw longest exposure, linear) is binned (``binning``, auto: about 2000 px
wide; a Bayer frame by whole 2×2 cells, its luminance), smoothed by a 3×3 box and differenced
against the previous frame's smoothed image: what is new in this frame. Then:

* **masks**: the previous frame's bright pixels (stars, planets, the Moon, its glow; above the
  local background by ``star_sigma``, dilated by ``star_dilate``) so that stars that drift or
  twinkle between frames leave nothing; pixels outside the image circle; the Moon's disc where
  a lens model and the Moon's place are known;
* **line detection**: OpenCV's probabilistic Hough transform on the difference thresholded at
  ``threshold_sigma`` of its local noise (from the local mean absolute difference), twice: short
  segments, and long ones across gaps (a strobe, masked stars); collinear segments merged into
  tracks, each refitted to its pixels and followed outwards along its faint ends;
* **validation**: along each track, the difference on the line against the difference at
  ``side_offset`` on both sides. A streak is brighter than *both* sides (a cloud edge is bright
  on one side only, a brightened cloud on both sides and the line), by ``min_snr`` with the
  noise measured from the two sides themselves, has little light ``width_offset`` beside the
  line (a cloud filament, an insect near the lens are wider), spreads its light along the track
  (a star coming out of a cloud does not) and is cut to its lit part;
* **classification** from the brightness profile along the track: blinking (dips between bright
  stretches: an aircraft's lights) or steady (little scatter) or longer than
  ``meteor_max_deg`` is a satellite (or aircraft); a track that fades towards an end is a meteor.

The array work (binning, smoothing, difference, noise map, thresholds, masks and their dilation)
runs on the pipeline's backend (NumPy/OpenCV or CuPy); the Hough transform and the sampling
along tracks run on the CPU on the thresholded mask and a few thousand samples.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from obsy.skymodel import SkyModel
from obsy_allsky.backend import Backend, NumpyBackend

StreakKind = Literal["meteor", "satellite"]


@dataclass(frozen=True)
class StreakSettings:
    """The detector's knobs; lengths and offsets in binned pixels. The defaults are those the
    tests measure (docs/allsky.md, "Meteors and satellites")."""

    binning: int | None = None  # None: about 2000 px wide after binning
    threshold_sigma: float = 3.0  # pixels of the smoothed difference above this many sigma feed the Hough transform
    min_length: float = 14.0  # binned pixels
    max_gap: float = 4.0  # binned pixels bridged within a track
    star_sigma: float = 15.0  # previous frame's pixels this far above the local background are masked
    star_dilate: int = 3  # binned pixels, the mask's dilation (odd)
    background_box: int = 31  # binned pixels: the box of the star mask's local background and of the noise map
    side_offset: float = 8.0  # binned pixels from the track where its background is sampled
    width_offset: float = 3.5  # binned pixels from the track where a streak has (nearly) no light left
    max_shoulder: float = 0.3  # the light there at most this share of the track's (else it is too wide)
    min_snr: float = 8.0  # the track's mean excess over both sides, in its own noise
    min_symmetry: float = 0.4  # the weaker side's excess at least this share of the stronger's
    min_unmasked: float = 0.4  # share of the track outside the masks
    lit_share: float = 0.25  # half the track's profile at least this share of its peak (not one bright spot)
    moon_radius_deg: float = 4.0  # radius of the Moon's mask where its place is known
    meteor_max_deg: float = 60.0  # longer tracks are satellites
    meteor_max_fraction: float = 0.35  # without a lens: tracks longer than this share of the image's width
    steady_cv: float = 0.25  # profile scatter below this: steady (satellite)
    fade_ratio: float = 0.6  # a meteor's dimmer end is below this share of its peak
    max_tracks: int = 20  # only the longest this many candidate tracks of a frame are judged


@dataclass
class Streak:
    """One detected track: end points in full-resolution pixels (and alt/az with a lens)."""

    kind: StreakKind
    x0: float
    y0: float
    x1: float
    y1: float
    length_px: float
    snr: float
    steadiness: float  # profile scatter (std/mean)
    fade: float  # the dimmer end over the peak
    blinks: int  # dips between bright stretches
    profile: list[float | None] = field(default_factory=list)  # brightness along the track (None: masked)
    alt0: float | None = None
    az0: float | None = None
    alt1: float | None = None
    az1: float | None = None
    length_deg: float | None = None

    @property
    def angle_deg(self) -> float:
        return math.degrees(math.atan2(self.y1 - self.y0, self.x1 - self.x0)) % 180.0

    def as_data(self) -> dict[str, Any]:
        data = {
            "kind": self.kind,
            "start": [round(self.x0, 1), round(self.y0, 1)],
            "end": [round(self.x1, 1), round(self.y1, 1)],
            "length_px": round(self.length_px, 1),
            "snr": round(self.snr, 1),
            "steadiness": round(self.steadiness, 3),
            "fade": round(self.fade, 3),
            "blinks": self.blinks,
        }
        if self.alt0 is not None:
            data["start_altaz"] = [round(self.alt0, 2), round(self.az0, 2)]
            data["end_altaz"] = [round(self.alt1, 2), round(self.az1, 2)]
            data["length_deg"] = round(self.length_deg, 2) if self.length_deg is not None else None
        return data


def classify_profile(
    profile: np.ndarray, length_deg: float | None, length_fraction: float, settings: StreakSettings
) -> tuple[StreakKind, float, float, int]:
    """(kind, steadiness, fade, blinks) from the brightness along a track (NaN where masked)."""
    p = np.asarray(profile, dtype=np.float64)
    good = np.isfinite(p)
    peak = float(np.max(p[good])) if good.any() else 0.0
    if peak <= 0:
        return "satellite", 1.0, 1.0, 0
    q = np.where(good, p / peak, np.nan)
    blinks = 0
    for i in range(1, len(q) - 1):
        if not (np.isfinite(q[i]) and q[i] < 0.3):
            continue
        before, after = q[:i], q[i + 1 :]
        if np.nanmax(before, initial=0) > 0.6 and np.nanmax(after, initial=0) > 0.6 and not (q[i - 1] < 0.3):
            blinks += 1
    mean = float(np.nanmean(p))
    steadiness = float(np.nanstd(p) / mean) if mean > 0 else 1.0
    ends = [v for v in (q[good][0], q[good][-1])]
    fade = float(min(ends))
    too_long = (
        length_deg > settings.meteor_max_deg
        if length_deg is not None
        else length_fraction > settings.meteor_max_fraction
    )
    if blinks >= 2 or too_long or steadiness < settings.steady_cv:
        return "satellite", steadiness, fade, blinks
    if fade < settings.fade_ratio:
        return "meteor", steadiness, fade, blinks
    return "satellite", steadiness, fade, blinks


def _angular_distance(alt0: float, az0: float, alt1: float, az1: float) -> float:
    a0, a1, d = math.radians(alt0), math.radians(alt1), math.radians(az1 - az0)
    c = math.sin(a0) * math.sin(a1) + math.cos(a0) * math.cos(a1) * math.cos(d)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


class StreakDetector:
    """Finds streaks in each frame against the one before; :meth:`reset` forgets the previous frame."""

    def __init__(
        self,
        settings: StreakSettings | None = None,
        backend: Backend | None = None,
        lens: SkyModel | None = None,
        circle: np.ndarray | None = None,
        *,
        bayer: bool = False,
    ) -> None:
        self.settings = settings or StreakSettings()
        self.bayer = bayer  # the frames are a colour mosaic (2×2 cells)
        self.backend = backend or NumpyBackend()
        self.lens = lens
        self.circle = circle  # full-resolution boolean mask of the image circle (None: everything)
        self._previous: tuple[Any, Any, float, tuple[int, ...]] | None = None  # smoothed, star mask, exposure, shape
        self._circle_binned: Any = None
        self.last_candidates = 0
        self.rejected: list[tuple[np.ndarray, str]] = []  # the last frame's candidates judged not streaks, and why

    def reset(self) -> None:
        self._previous = None

    def binning_for(self, width: int) -> int:
        """The bin: the settings', else about 2000 px wide after binning; even for a Bayer mosaic
        (a bin of whole 2×2 cells is luminance; a bin of 1 would difference colours unevenly)."""
        if self.settings.binning is not None:
            return self.settings.binning
        b = max(1, round(width / 2000))
        if self.bayer and b % 2:
            b += 1
        return b

    # --- the array work (backend) ------------------------------------------------------
    def _bin(self, raw: np.ndarray, b: int) -> Any:
        be = self.backend
        h, w = raw.shape[0] // b * b, raw.shape[1] // b * b
        if b == 1:
            return raw if isinstance(be, NumpyBackend) else be.asarray(raw)
        if isinstance(be, NumpyBackend):
            return cv2.resize(raw[:h, :w], (w // b, h // b), interpolation=cv2.INTER_AREA)  # the box makes float32
        image = be.asarray(raw[:h, :w])
        return image.reshape(h // b, b, w // b, b).mean(axis=(1, 3))

    def _circle_for(self, shape: tuple[int, int], b: int) -> Any:
        if self.circle is None:
            return None
        if self._circle_binned is None or self._circle_binned.shape != shape:
            c = self.circle[: shape[0] * b : b, : shape[1] * b : b]
            self._circle_binned = self.backend.asarray(c, dtype=bool)
        return self._circle_binned

    def _noise_map(self, image: Any) -> Any:
        """Local noise (standard deviation) of a zero-mean noise image: 1.2533 × the local mean absolute value."""
        be = self.backend
        noise = be.box_filter(be.xp.abs(image), self.settings.background_box)
        noise *= 1.2533
        noise += 1e-6
        return noise

    def _first_noise_map(self, smooth: Any) -> Any:
        """The smoothed frame's local noise from neighbouring pixels' differences (no previous frame yet)."""
        xp = self.backend.xp
        step = xp.zeros_like(smooth)
        step[:, 3:] = smooth[:, 3:] - smooth[:, :-3]  # three apart: independent after the 3×3 box
        noise = self._noise_map(step)
        noise /= math.sqrt(2.0)
        return noise

    def _usable(self, smooth: Any, noise: Any, circle: Any) -> Any:
        """Where the next frame's difference can be trusted: outside this frame's bright pixels (stars,
        planets, the Moon; ``star_sigma`` above the local background, ``noise`` the frame's own
        noise; dilated by ``star_dilate``) and inside the image circle. ``noise`` is overwritten."""
        s, be, xp = self.settings, self.backend, self.backend.xp
        excess = be.box_filter(smooth, s.background_box)
        xp.subtract(smooth, excess, out=excess)
        noise *= s.star_sigma
        bright = (excess > noise).view(xp.uint8)
        usable = be.maximum_filter(bright, s.star_dilate) == 0
        if circle is not None:
            usable &= circle
        return usable

    # --- a frame -----------------------------------------------------------------------
    def process(
        self, raw: np.ndarray, exposure_s: float, *, moon_altaz: tuple[float, float] | None = None
    ) -> list[Streak]:
        """The streaks new in ``raw`` (a single-channel raw or luminance frame) since the previous call."""
        s, be, xp = self.settings, self.backend, self.backend.xp
        b = self.binning_for(raw.shape[1])
        smooth = be.box_filter(self._bin(raw, b), 3)
        circle = self._circle_for(smooth.shape, b)
        previous = self._previous
        same = (
            previous is not None
            and previous[3] == raw.shape
            and abs(previous[2] - exposure_s) <= 0.05 * max(exposure_s, 1e-6)
        )
        self.rejected = []
        if not same:
            self._previous = (
                smooth,
                self._usable(smooth, self._first_noise_map(smooth), circle),
                exposure_s,
                raw.shape,
            )
            return []
        diff = smooth - previous[0]
        sigma = self._noise_map(diff)
        binary = diff > sigma * s.threshold_sigma
        keep = previous[1]
        binary &= keep
        binary = be.to_host(binary.view(xp.uint8))
        host_diff, noise = be.to_host(diff), be.to_host(sigma)
        # This frame's stars mask the next frame's difference (its own noise: the difference's / sqrt 2).
        self._previous = (smooth, self._usable(smooth, sigma / math.sqrt(2.0), circle), exposure_s, raw.shape)
        keep_host = be.to_host(keep)
        if moon_altaz is not None and self.lens is not None and moon_altaz[0] > 0:
            mx, my = self.lens.altaz_to_pixel(moon_altaz[0], moon_altaz[1])
            if np.isfinite(mx) and np.isfinite(my):
                centre = (round((float(mx) + 0.5) / b - 0.5), round((float(my) + 0.5) / b - 0.5))
                radius = math.ceil(s.moon_radius_deg * self.lens.pixels_per_degree / b)
                cv2.circle(binary, centre, radius, 0, -1)
                keep_u8 = keep_host.astype(np.uint8)
                cv2.circle(keep_u8, centre, radius, 0, -1)
                keep_host = keep_u8.view(bool)
        segments = [
            cv2.HoughLinesP(
                binary,
                rho=1,
                theta=np.pi / 180,
                threshold=max(5, int(s.min_length * 0.4)),
                minLineLength=s.min_length / 2,
                maxLineGap=s.max_gap,
            ),
            # Dashed tracks (an aircraft's strobe, a track across masked stars): long, gaps bridged.
            cv2.HoughLinesP(
                binary,
                rho=1,
                theta=np.pi / 360,
                threshold=int(2 * s.min_length),
                minLineLength=4 * s.min_length,
                maxLineGap=3 * s.min_length,
            ),
        ]
        segments = [found.reshape(-1, 4) for found in segments if found is not None]
        if not segments:
            self.last_candidates = 0
            return []
        tracks = _merge(np.concatenate(segments).astype(np.float64), s.max_gap)
        self.last_candidates = len(tracks)
        if len(tracks) > s.max_tracks:
            tracks = sorted(tracks, key=lambda t: -math.hypot(t[2] - t[0], t[3] - t[1]))[: s.max_tracks]
        found: list[tuple[np.ndarray, Streak]] = []
        for candidate in tracks:
            track = self._refine(candidate, binary, host_diff, keep_host, noise)
            streak = self._judge(track, host_diff, keep_host, b, raw.shape[1])
            if streak is not None:
                found.append((track, streak))
        return _unique(found)

    def _refine(
        self, track: np.ndarray, binary: np.ndarray, diff: np.ndarray, keep: np.ndarray, noise: np.ndarray
    ) -> np.ndarray:
        """The track's line fitted to the thresholded pixels near it, its ends followed outwards while
        the difference on the line stays above twice the noise (the Hough segment covers only the
        brightest part of a faint or fading streak)."""
        s = self.settings
        x0, y0, x1, y1 = track
        length = math.hypot(x1 - x0, y1 - y0)
        h, w = binary.shape
        left, right = int(max(0, min(x0, x1) - 3)), int(min(w, max(x0, x1) + 4))
        top, bottom = int(max(0, min(y0, y1) - 3)), int(min(h, max(y0, y1) + 4))
        ys, xs = np.nonzero(binary[top:bottom, left:right])
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        if len(xs) >= 5:
            xs, ys = xs + left - x0, ys + top - y0
            near = np.abs(-xs * uy + ys * ux) < 2.5
            if near.sum() >= 5:
                pts = np.stack([xs[near], ys[near]], axis=1).astype(np.float64)
                centre = pts.mean(axis=0)
                _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
                vx, vy = vt[0]
                if vx * ux + vy * uy < 0:
                    vx, vy = -vx, -vy
                t = (pts - centre) @ np.array([vx, vy])
                cx, cy = x0 + centre[0], y0 + centre[1]
                x0, y0, x1, y1 = cx + vx * t.min(), cy + vy * t.min(), cx + vx * t.max(), cy + vy * t.max()
                ux, uy = vx, vy
        # Follow each end outwards.
        ends = []
        for sx, sy, dx, dy in ((x1, y1, ux, uy), (x0, y0, -ux, -uy)):
            steps = np.arange(1, int(max(10.0, length)) + 1, dtype=np.float64)
            px, py = np.rint(sx + dx * steps).astype(int), np.rint(sy + dy * steps).astype(int)
            inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
            px, py = px[inside], py[inside]
            last, misses = 0, 0
            for i in range(len(px)):
                if not keep[py[i], px[i]]:
                    misses += 1
                elif diff[py[i], px[i]] > 2.0 * noise[py[i], px[i]]:
                    last, misses = i + 1, 0
                else:
                    misses += 1
                if misses > s.max_gap:
                    break
            ends.append((sx + dx * last, sy + dy * last))
        (ex1, ey1), (ex0, ey0) = ends
        return np.array([ex0, ey0, ex1, ey1])

    def _reject(self, track: np.ndarray, why: str) -> None:
        self.rejected.append((track, why))

    def _judge(  # noqa: PLR0911 - one rejection per test, in order
        self, track: np.ndarray, diff: np.ndarray, keep: np.ndarray, b: int, width: int, *, trimmed: bool = False
    ) -> Streak | None:
        """The streak along ``track`` (binned pixels), or None with the reason in :attr:`rejected`."""
        s = self.settings
        line = _Line(track, diff, keep)
        if line.length < s.min_length:
            return self._reject(track, "short")
        on, ok_on = line.sample(0.0)
        left, ok_left = line.sample(-s.side_offset)
        right, ok_right = line.sample(s.side_offset)
        both = ok_on & ok_left & ok_right
        ok = ok_on & (ok_left | ok_right)
        if ok.sum() < max(s.min_unmasked * line.n, s.min_length * 0.5) or both.sum() < 4:
            return self._reject(track, "masked")
        delta = (left - right)[both]
        sigma0 = 1.4826 * float(np.median(np.abs(delta - np.median(delta)))) / math.sqrt(2)
        if sigma0 <= 0:
            return self._reject(track, "no noise")
        c_left = float(np.mean((on - left)[ok_on & ok_left]))
        c_right = float(np.mean((on - right)[ok_on & ok_right]))
        if max(c_left, c_right) <= 0 or min(c_left, c_right) < s.min_symmetry * max(c_left, c_right):
            return self._reject(track, "one-sided")
        sides = np.where(ok_left & ok_right, 0.5 * (left + right), np.where(ok_left, left, right))
        contrast = on - sides
        if not trimmed:
            cut = line.lit_part(contrast, ok, sigma0)
            if cut is not None:
                return self._judge(cut, diff, keep, b, width, trimmed=True)
        n_eff = max(1.0, ok.sum() / 3.0)  # the 3×3 box correlates neighbouring samples
        snr = float(np.mean(contrast[ok])) * math.sqrt(n_eff) / (sigma0 * math.sqrt(1.5))
        if snr < s.min_snr:
            return self._reject(track, f"faint (snr {snr:.1f})")
        near_left, ok_near_left = line.sample(-s.width_offset, single=True)
        near_right, ok_near_right = line.sample(s.width_offset, single=True)
        near = ok & ok_near_left & ok_near_right
        if near.sum() >= 4:
            shoulder = float(np.mean((0.5 * (near_left + near_right) - sides)[near]))
            if shoulder > s.max_shoulder * float(np.mean(contrast[near])):
                return self._reject(track, "wide")  # a cloud's edge or filament
        profile = line.profile(contrast, ok)
        lit = profile[np.isfinite(profile)]
        if len(lit) < 3 or np.sum(lit > s.lit_share * lit.max()) < 0.5 * len(lit):
            return self._reject(track, "spot")  # a star coming out of a cloud, a planet: not a line
        return self._streak(track, b, width, snr, profile)

    def _streak(self, track: np.ndarray, b: int, width: int, snr: float, profile: np.ndarray) -> Streak:
        """The streak in full-resolution pixels (and alt/az where the lens is known), classified."""
        fx0, fy0, fx1, fy1 = ((float(v) + 0.5) * b - 0.5 for v in track)
        length_px = math.hypot(fx1 - fx0, fy1 - fy0)
        alt0 = az0 = alt1 = az1 = length_deg = None
        if self.lens is not None:
            alt, az = self.lens.pixel_to_altaz(np.array([fx0, fx1]), np.array([fy0, fy1]))
            if np.all(np.isfinite(alt)):
                alt0, alt1, az0, az1 = float(alt[0]), float(alt[1]), float(az[0]), float(az[1])
                length_deg = _angular_distance(alt0, az0, alt1, az1)
        kind, steadiness, fade, blinks = classify_profile(profile, length_deg, length_px / width, self.settings)
        return Streak(
            kind=kind,
            x0=fx0,
            y0=fy0,
            x1=fx1,
            y1=fy1,
            length_px=length_px,
            snr=snr,
            steadiness=steadiness,
            fade=fade,
            blinks=blinks,
            profile=[round(float(v), 3) if np.isfinite(v) else None for v in profile],
            alt0=alt0,
            az0=az0,
            alt1=alt1,
            az1=az1,
            length_deg=length_deg,
        )


class _Line:
    """Samples of the difference image along a track, one per pixel of its length."""

    def __init__(self, track: np.ndarray, diff: np.ndarray, keep: np.ndarray) -> None:
        self.track, self.diff, self.keep = track, diff, keep
        x0, y0, x1, y1 = (float(v) for v in track)
        self.length = math.hypot(x1 - x0, y1 - y0)
        self.n = int(self.length) + 1
        self.t = np.linspace(0.0, 1.0, self.n)
        self.xs, self.ys = x0 + self.t * (x1 - x0), y0 + self.t * (y1 - y0)
        length = max(self.length, 1e-9)
        self.nx, self.ny = -(y1 - y0) / length, (x1 - x0) / length

    def sample(self, offset: float, *, single: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The difference at ``offset`` px across the track (the maximum of three neighbours across,
        unless ``single``) and where it is usable (inside the image, outside the masks)."""
        h, w = self.diff.shape
        values, ok = [], np.ones(self.n, dtype=bool)
        for d in (0.0,) if single else (-1.0, 0.0, 1.0):
            cx = np.rint(self.xs + self.nx * (offset + d)).astype(int)
            cy = np.rint(self.ys + self.ny * (offset + d)).astype(int)
            inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
            cx, cy = np.clip(cx, 0, w - 1), np.clip(cy, 0, h - 1)
            values.append(self.diff[cy, cx])
            ok &= inside & self.keep[cy, cx]
        return np.max(values, axis=0), ok

    def lit_part(self, contrast: np.ndarray, ok: np.ndarray, sigma0: float, window: int = 9) -> np.ndarray | None:
        """The track cut to its longest lit stretch (dark gaps up to a few windows bridged: a strobe's, a
        star mask's), where the ends are dark (a bridged gap ran on into the noise); None if nothing to cut."""
        running = np.convolve(np.where(ok, contrast, 0.0), np.ones(window), "same")
        counts = np.convolve(ok.astype(np.float64), np.ones(window), "same")
        mean = np.where(counts > 0, running / np.maximum(counts, 1), 0.0)
        lit = np.nonzero(mean > 2.5 * sigma0 * math.sqrt(1.5) / math.sqrt(window / 3.0))[0]
        if not len(lit):
            return None
        lit = max(np.split(lit, np.nonzero(np.diff(lit) > window)[0] + 1), key=len)
        if lit[0] <= 2 and lit[-1] >= self.n - 3:
            return None
        x0, y0, x1, y1 = self.track
        a, z = self.t[lit[0]], self.t[lit[-1]]
        return np.array([x0 + a * (x1 - x0), y0 + a * (y1 - y0), x0 + z * (x1 - x0), y0 + z * (y1 - y0)])

    def profile(self, contrast: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """The mean contrast in 4 to 16 stretches along the track (NaN where all is masked)."""
        bins = int(np.clip(self.n // 4, 4, 16))
        edges = np.linspace(0, self.n, bins + 1).astype(int)
        return np.array(
            [float(np.mean(contrast[a:z][ok[a:z]])) if ok[a:z].any() else np.nan for a, z in itertools.pairwise(edges)]
        )


def _unique(found: list[tuple[np.ndarray, Streak]]) -> list[Streak]:
    """The streaks without those lying on a longer one (a second piece of one track)."""
    found = sorted(found, key=lambda item: -item[1].length_px)
    kept: list[tuple[np.ndarray, Streak]] = []
    for track, streak in found:
        if not any(_on(track, other) for other, _ in kept):
            kept.append((track, streak))
    return [streak for _, streak in kept]


def _on(track: np.ndarray, other: np.ndarray, tol: float = 3.0) -> bool:
    ox0, oy0, ox1, oy1 = other
    length = math.hypot(ox1 - ox0, oy1 - oy0)
    ux, uy = (ox1 - ox0) / length, (oy1 - oy0) / length
    for x, y in ((track[0], track[1]), (track[2], track[3])):
        t = (x - ox0) * ux + (y - oy0) * uy
        if abs(-(x - ox0) * uy + (y - oy0) * ux) > tol or not -tol <= t <= length + tol:
            return False
    return True


def _merge(segments: np.ndarray, max_gap: float) -> list[np.ndarray]:
    """Collinear segments joined into tracks, repeatedly, until none joins: overlapping or near ones
    (within ``3 max_gap``), and pieces of a dashed track (an aircraft's blinking lights, a track
    crossing masked stars) across gaps up to twice the longer piece when they lie on one line."""
    tracks = [np.asarray(seg, dtype=np.float64) for seg in segments if math.hypot(seg[2] - seg[0], seg[3] - seg[1]) > 0]
    merged = True
    while merged and len(tracks) > 1:
        merged = False
        tracks.sort(key=lambda t: -math.hypot(t[2] - t[0], t[3] - t[1]))
        for i in range(len(tracks)):
            for j in range(i + 1, len(tracks)):
                joined = _join(tracks[i], tracks[j], max_gap)
                if joined is not None:
                    tracks[i] = joined
                    del tracks[j]
                    merged = True
                    break
            if merged:
                break
    return tracks


def _join(a: np.ndarray, b: np.ndarray, max_gap: float) -> np.ndarray | None:
    """``a`` extended by ``b`` when ``b`` lies on ``a``'s line near enough; else None (``a`` the longer)."""
    ax0, ay0, ax1, ay1 = a
    length_a = math.hypot(ax1 - ax0, ay1 - ay0)
    ux, uy = (ax1 - ax0) / length_a, (ay1 - ay0) / length_a
    bx0, by0, bx1, by1 = b
    length_b = math.hypot(bx1 - bx0, by1 - by0)
    cos = abs(((bx1 - bx0) * ux + (by1 - by0) * uy) / length_b)
    if cos < math.cos(math.radians(6.0)):
        return None
    ta, tb = (bx0 - ax0) * ux + (by0 - ay0) * uy, (bx1 - ax0) * ux + (by1 - ay0) * uy
    da, db = abs(-(bx0 - ax0) * uy + (by0 - ay0) * ux), abs(-(bx1 - ax0) * uy + (by1 - ay0) * ux)
    lo, hi = min(ta, tb), max(ta, tb)
    gap = max(lo - length_a, -hi, 0.0)
    near = gap <= 3 * max_gap and max(da, db) < 3.0
    dashed = (
        gap <= 2.0 * min(length_a, length_b) + 3 * max_gap and max(da, db) < 2.5 and cos > math.cos(math.radians(10.0))
    )
    if not (near or dashed):
        return None
    t0, t1 = min(0.0, lo), max(length_a, hi)
    return np.array([ax0 + ux * t0, ay0 + uy * t0, ax0 + ux * t1, ay0 + uy * t1])


def crop_png(image: np.ndarray, streak: Streak, *, margin: int = 32, scale: float = 1.0) -> bytes:
    """A PNG of ``image`` around the track (``scale``: the image's pixels per raw pixel), stretched to 8 bits."""
    h, w = image.shape[:2]
    xs = np.array([streak.x0, streak.x1]) * scale
    ys = np.array([streak.y0, streak.y1]) * scale
    left, right = int(max(0, math.floor(xs.min()) - margin)), int(min(w, math.ceil(xs.max()) + margin + 1))
    top, bottom = int(max(0, math.floor(ys.min()) - margin)), int(min(h, math.ceil(ys.max()) + margin + 1))
    part = np.asarray(image[top:bottom, left:right])
    if part.dtype != np.uint8:
        part = part.astype(np.float32)
        lo, hi = np.percentile(part, 1.0), np.percentile(part, 99.8)
        part = np.clip((part - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    if part.ndim == 3:
        part = cv2.cvtColor(part, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", part)
    if not ok:
        raise ValueError("the crop could not be encoded as PNG")
    return data.tobytes()
