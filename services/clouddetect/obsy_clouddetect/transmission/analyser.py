"""Cloud cover from star transmission: the stars the catalogue puts in the sky against those seen.

For one night frame:

1. remove the background and detect stars (:mod:`.stars`);
2. compute where every catalogue star stands (astropy, offline) and fit or refine the
   camera's :class:`~obsy.skymodel.SkyModel` on the detections;
3. measure the light in a small aperture at each expected star's pixel and compare it
   with what a clear sky gives: the catalogue magnitude, extinction by airmass and the
   camera's clear-sky zero point (:class:`ZeroPointReference`), so a thin uniform veil
   shows as dimmed stars even though every star is still detected;
4. smooth those per-star transmissions over the sky (a Gaussian on the sphere) into a
   map on an altitude/azimuth grid; the cloud cover is the share of the sky (by solid
   angle) whose transmission is below ``clear_transmission``.

Only stars bright enough to be measured well in this frame are judged (expected
signal-to-noise at least ``min_snr``), so a brighter background (moon, glow) makes the
test coarser, never wrongly cloudy. Stars near the Moon are left out.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from obsy.astro import airmass
from obsy.files import write_atomic
from obsy.skymodel import SkyFit, SkyModel, StarCatalogue, fit_sky_model
from obsy_clouddetect.transmission.stars import PreparedFrame, detect_stars

#: With a known model, every this many frames that fail to refine try a full search.
SEARCH_EVERY = 20

CLEAR, PARTLY, CLOUDY, THIN, OVERCAST = "Clear", "Partly Cloudy", "Cloudy", "Thin Cloud", "Overcast"


@dataclass(frozen=True)
class TransmissionSettings:
    min_altitude: float = 20.0
    limiting_magnitude: float = 6.0
    min_snr: float = 5.0
    extinction: float = 0.25
    clear_transmission: float = 0.6
    map_step: float = 3.0
    smoothing: float = 6.0
    moon_avoid: float = 15.0
    max_model_jump: float = 2.0  # degrees a refit may move the zenith before it is distrusted


@dataclass(frozen=True)
class CloudMap:
    """Transmission on an altitude/azimuth grid; NaN where no star could be judged."""

    alt: np.ndarray
    az: np.ndarray
    transmission: np.ndarray


@dataclass(frozen=True)
class TransmissionResult:
    cover: float | None  # percent, None = could not judge
    transmission: float | None  # area-weighted mean over the judged sky
    label: str
    confidence: float
    fit: SkyFit | None
    model: SkyModel | None
    stars_detected: int
    stars_expected: int
    stars_seen: int
    zero_point: float | None
    cloud_map: CloudMap | None
    reason: str = ""


class ZeroPointReference:
    """The clear-sky zero point (magnitude giving 1 ADU/s) learnt from the clearest frames seen.

    A frame's own zero point comes from its brightest-measured stars; the reference is the
    95th percentile of the recent frames' values (the maximum while there are fewer than
    twenty), so the clear frames of recent nights set it and cloudy ones do not drag it
    down. A configured value replaces the learnt one. Kept per camera gain.
    """

    def __init__(self, path: Path | None = None, memory: int = 2000, fixed: float | None = None) -> None:
        self.path = path
        self.memory = memory
        self.fixed = fixed
        self.history: dict[str, deque[float]] = {}
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self.history = {k: deque(map(float, v), maxlen=memory) for k, v in data.items()}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                logging.getLogger("obsy.clouddetect").warning(
                    "ignoring the saved zero points in %s (%s); learning them afresh", path, exc
                )
                self.history = {}

    def reference(self, gain: float | None) -> float | None:
        if self.fixed is not None:
            return self.fixed
        values = self.history.get(str(gain))
        if not values:
            return None
        return float(max(values) if len(values) < 20 else np.percentile(values, 95))

    def add(self, gain: float | None, value: float) -> None:
        self.history.setdefault(str(gain), deque(maxlen=self.memory)).append(float(value))

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({k: list(v) for k, v in self.history.items()}))


def _unit_vectors(alt: np.ndarray, az: np.ndarray) -> np.ndarray:
    a, z = np.radians(alt), np.radians(az)
    return np.stack([np.cos(a) * np.cos(z), np.cos(a) * np.sin(z), np.sin(a)], axis=-1)


class TransmissionAnalyser:
    """Judges night frames of one camera at one site; keeps the sky model between frames."""

    def __init__(
        self,
        catalogue: StarCatalogue,
        latitude: float,
        longitude: float,
        elevation: float = 0.0,
        *,
        settings: TransmissionSettings | None = None,
        model: SkyModel | None = None,
        zero_point: ZeroPointReference | None = None,
        fixed_model: bool = False,
    ) -> None:
        self.settings = settings or TransmissionSettings()
        self.catalogue = catalogue.brighter_than(max(self.settings.limiting_magnitude, 4.5))
        self.site = (latitude, longitude, elevation)
        self.model = model
        self.fixed_model = fixed_model
        self.failed_fits = 0
        self.zero_point = zero_point or ZeroPointReference()
        s = self.settings
        grid_alt, grid_az = np.meshgrid(
            np.arange(s.min_altitude + s.map_step / 2, 90.0, s.map_step), np.arange(0.0, 360.0, s.map_step)
        )
        self.grid_alt, self.grid_az = grid_alt, grid_az
        from scipy.spatial import cKDTree  # here, not at the top: importing the module stays light

        self.grid_tree = cKDTree(_unit_vectors(grid_alt, grid_az).reshape(-1, 3))
        self.grid_weight = np.cos(np.radians(grid_alt)).ravel()

    def analyse(
        self,
        image: np.ndarray,
        when: datetime,
        exposure_s: float,
        gain: float | None = None,
        moon: tuple[float, float] | None = None,
    ) -> TransmissionResult:
        """Judge one frame. ``moon`` is its (altitude, azimuth) when above the horizon."""
        s = self.settings
        if not exposure_s > 0:
            return TransmissionResult(
                None,
                None,
                "unknown",
                0.0,
                None,
                self.model,
                0,
                0,
                0,
                None,
                None,
                reason=f"the frame gives no exposure time ({exposure_s}); star brightness cannot be judged",
            )
        frame = PreparedFrame(image)
        alt, az = self.catalogue.altaz(*self.site, when)
        mag = self.catalogue.mag
        fit, detected, reason = self._update_model(frame, alt, az)
        unknown = TransmissionResult(None, None, "unknown", 0.0, fit, self.model, detected, 0, 0, None, None)
        if self.model is None:
            return replace(unknown, reason=f"no sky model yet: {reason}")

        judged = (alt >= s.min_altitude) & (mag <= s.limiting_magnitude)
        if moon is not None and moon[0] > -1.0:
            moon_vec = _unit_vectors(np.array(moon[0]), np.array(moon[1]))
            judged &= _unit_vectors(alt, az) @ moon_vec < math.cos(math.radians(s.moon_avoid))
        alt, az, mag = alt[judged], az[judged], mag[judged]
        x, y = self.model.altaz_to_pixel(alt, az)
        flux = frame.aperture_flux(x, y)
        noise = frame.aperture_noise()
        inside = np.isfinite(flux)
        alt, az, mag, flux = alt[inside], az[inside], mag[inside], flux[inside]
        corrected = mag + s.extinction * (airmass(alt) - 1.0)

        bright = flux > 10 * noise
        frame_zp = None
        if bright.sum() >= 10:
            frame_zp = float(np.median(corrected[bright] + 2.5 * np.log10(flux[bright] / exposure_s)))
            if bright.sum() >= 20:
                self.zero_point.add(gain, frame_zp)
        reference = self.zero_point.reference(gain)
        if reference is None:
            return replace(unknown, zero_point=frame_zp, reason="no clear-sky zero point yet")
        expected = exposure_s * 10 ** (-0.4 * (corrected - reference))
        usable = expected >= s.min_snr * noise
        if usable.sum() < 10:
            return replace(
                unknown,
                zero_point=frame_zp,
                stars_expected=int(usable.sum()),
                reason="too few catalogue stars bright enough to judge in this frame",
            )
        star_t = np.clip(flux[usable] / expected[usable], 0.0, 1.5)
        cloud_map, cover, mean_t, known = self._map(alt[usable], az[usable], star_t)
        return replace(
            unknown,
            cover=cover,
            transmission=mean_t,
            label=self._label(cover, mean_t),
            confidence=round(min(1.0, known) * min(1.0, usable.sum() / 50.0), 3),
            stars_expected=int(usable.sum()),
            stars_seen=int((flux[usable] > 3 * noise).sum()),
            zero_point=frame_zp,
            cloud_map=cloud_map,
        )

    def _update_model(self, frame: PreparedFrame, alt: np.ndarray, az: np.ndarray) -> tuple[SkyFit | None, int, str]:
        """Refine (or first find) the sky model on this frame's stars: (fit, stars detected, why not)."""
        if self.fixed_model:
            return None, 0, ""
        detections = detect_stars(frame)
        height, width = frame.shape
        try:
            # With a model in hand a failed refinement (clouds) searches afresh only now and
            # then, in case the camera was moved: the search costs seconds.
            search = self.model is None or self.failed_fits % SEARCH_EVERY == SEARCH_EVERY - 1
            fit = fit_sky_model(detections.xy, alt, az, (width, height), initial=self.model, search=search)
        except ValueError as exc:
            self.failed_fits += 1
            return None, len(detections), str(exc)
        if self.model is not None and fit.model.zenith_offset_deg(self.model) > self.settings.max_model_jump:
            return None, len(detections), "the refitted sky model jumped; kept the previous one"
        self.model = fit.model
        self.failed_fits = 0
        return fit, len(detections), ""

    def _map(self, alt: np.ndarray, az: np.ndarray, t: np.ndarray) -> tuple[CloudMap, float, float, float]:
        s = self.settings
        stars = _unit_vectors(alt, az)
        sigma = math.radians(s.smoothing)
        # Gaussian smoothing on the sphere, cut at 3 sigma: only the (cell, star) pairs that
        # near each other count, found by a KD-tree on unit vectors (chord = 2 sin(angle / 2)).
        reach = 2 * math.sin(1.5 * sigma)
        from scipy.spatial import cKDTree

        pairs = self.grid_tree.sparse_distance_matrix(cKDTree(stars), reach, output_type="ndarray")
        angle = 2 * np.arcsin(np.clip(pairs["v"] / 2, 0, 1))
        weight = np.exp(-(angle**2) / (2 * sigma**2))
        cells = len(self.grid_weight)
        total = np.bincount(pairs["i"], weights=weight, minlength=cells)
        smoothed = np.bincount(pairs["i"], weights=weight * t[pairs["j"]], minlength=cells) / np.maximum(total, 1e-12)
        known = total >= 0.5  # about one star within the smoothing radius
        grid_t = np.where(known, smoothed, np.nan)
        area = self.grid_weight[known]
        if area.sum() == 0:
            return CloudMap(self.grid_alt, self.grid_az, grid_t.reshape(self.grid_alt.shape)), 100.0, 0.0, 0.0
        cloudy = smoothed[known] < s.clear_transmission
        cover = float(100.0 * (area * cloudy).sum() / area.sum())
        mean_t = float((area * np.clip(smoothed[known], 0, 1)).sum() / area.sum())
        known_share = float(area.sum() / self.grid_weight.sum())
        return CloudMap(self.grid_alt, self.grid_az, grid_t.reshape(self.grid_alt.shape)), cover, mean_t, known_share

    @staticmethod
    def _label(cover: float, mean_t: float) -> str:
        if cover < 20:
            return CLEAR
        if cover < 70:
            return PARTLY
        if mean_t < 0.15:
            return OVERCAST
        if mean_t >= 0.25:
            return THIN
        return CLOUDY
