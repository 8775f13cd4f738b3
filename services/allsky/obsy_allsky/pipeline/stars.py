"""Star detection (count and positions) and a sky-brightness (SQM) estimate on linear data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from obsy_allsky.backend import Backend

#: Matched filter for a star image of about 1.5 px sigma.
_SMOOTH = np.exp(-0.5 * (np.arange(-3, 4) / 1.2) ** 2).astype(np.float32)
_SMOOTH /= _SMOOTH.sum()
#: Halvings of the image before the background median (a 2^4 = 16 px scale).
_BACKGROUND_LEVELS = 4
#: Growing the reduced background map beyond the horizon: kernel and steps (one pixel each).
_GROW = np.array([1.0, 1.0, 1.0], np.float32)
_GROW_STEPS = 4


@dataclass(frozen=True)
class StarField:
    """What star detection found: positions in pixels (x, y, sub-pixel), peak heights and the sky."""

    positions: np.ndarray
    peaks: np.ndarray
    background: float
    noise: float

    @property
    def count(self) -> int:
        return len(self.positions)

    def scaled(self, factor: float) -> StarField:
        """The same stars in the coordinates of an image ``factor`` times larger (pixel centres kept)."""
        positions = (self.positions + 0.5) * factor - 0.5
        return StarField(positions=positions, peaks=self.peaks, background=self.background, noise=self.noise)


def background_map(be: Backend, image: Any, mask: Any | None = None) -> Any:
    """Smooth sky background: a 5×5 median on a 16× reduced copy (stars vanish), brought back up.

    With a mask, the reduction is a normalised convolution (only pixels inside the image
    circle count) and the reduced map is grown outwards before it is brought back up, so the
    black beyond the horizon does not pull the background down near the edge (which would
    leave a ridge of false stars along it).
    """
    xp = be.xp
    weight = xp.ones(image.shape, dtype=xp.float32) if mask is None else mask.astype(xp.float32)
    signal, coverage = image * weight, weight
    for _ in range(_BACKGROUND_LEVELS):
        signal, coverage = be.pyr_down(signal), be.pyr_down(coverage)
    inside = coverage > np.float32(0.5)
    small = xp.where(inside, signal / xp.maximum(coverage, np.float32(1e-6)), np.float32(0))
    known = inside.astype(xp.float32)
    for _ in range(_GROW_STEPS):
        spread = be.sep_filter(small * known, _GROW) / xp.maximum(be.sep_filter(known, _GROW), np.float32(1e-6))
        grown = be.sep_filter(known, _GROW) > 0
        small = xp.where(known > 0, small, xp.where(grown, spread, small))
        known = xp.maximum(known, grown.astype(xp.float32))
    small = be.median3(small, 5)
    shapes = [image.shape]
    for _ in range(_BACKGROUND_LEVELS):
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    for shape in reversed(shapes[:-1]):
        small = be.pyr_up(small, shape[0], shape[1])
    return small


def detect_stars(
    be: Backend,
    image: Any,
    *,
    threshold_sigma: float = 5.0,
    min_separation_px: int = 5,
    mask: Any | None = None,
    saturation: float = 0.95,
) -> StarField:
    """Local maxima of the matched-filtered, background-subtracted (H, W) image above the local noise.

    The noise is measured locally (a map, like the background), so the shot noise of a
    moonlit halo or a light dome does not turn into stars. Saturated areas larger than a star
    (the Moon, lit clouds), with a margin, are left out. ``saturation`` is the clipping level
    in the image's units.
    """
    xp = be.xp
    background = background_map(be, image, mask)
    smoothed = be.sep_filter(image - background, _SMOOTH)
    sample = smoothed[::3, ::3]
    if mask is not None:
        sample = sample[mask[::3, ::3]]
    centre = xp.median(sample)
    noise = xp.median(xp.abs(sample - centre)) * np.float32(1.4826)
    # Mean absolute deviation → sigma for Gaussian noise; deviations are capped so that stars
    # hardly count, and the local noise is never below the frame's own.
    deviation = xp.minimum(xp.abs(smoothed - centre), noise * np.float32(4))
    local_noise = xp.maximum(background_map(be, deviation, mask) * np.float32(1.2533), noise)
    threshold = centre + xp.maximum(local_noise, np.float32(1e-9)) * np.float32(threshold_sigma)
    size = min_separation_px | 1
    peaks = (smoothed >= be.maximum_filter(smoothed, size)) & (smoothed > threshold)
    if mask is not None:
        peaks &= mask
    blown = _large_saturated_areas(be, image, saturation)
    if blown is not None:
        peaks &= ~blown
    edge = 2
    peaks[:edge, :] = False
    peaks[-edge:, :] = False
    peaks[:, :edge] = False
    peaks[:, -edge:] = False
    ys, xs = xp.nonzero(peaks)
    # Sub-pixel position: intensity-weighted centroid of the 3×3 neighbourhood above the sky.
    total = xp.zeros(ys.shape, dtype=xp.float32)
    sum_x = xp.zeros_like(total)
    sum_y = xp.zeros_like(total)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            value = xp.maximum(smoothed[ys + dy, xs + dx] - centre, 0)
            total += value
            sum_x += value * dx
            sum_y += value * dy
    total = xp.maximum(total, np.float32(1e-12))
    positions = be.to_host(xp.stack([xs + sum_x / total, ys + sum_y / total], axis=1)).astype(np.float64)
    heights = be.to_host(smoothed[ys, xs] - centre)
    keep = _one_per_star(positions.reshape(-1, 2), heights, min_separation_px)
    return StarField(
        positions=positions.reshape(-1, 2)[keep],
        peaks=heights[keep],
        background=float(xp.median(_masked_sample(image, mask))),  # robust: stars are few pixels
        noise=float(noise),
    )


def _large_saturated_areas(be: Backend, image: Any, saturation: float) -> Any | None:
    """Pixels in or near a clipped area wider than a star (5×5 px or more); None when nothing clips."""
    xp = be.xp
    clipped = (image >= np.float32(saturation)).astype(xp.float32)
    if not bool(clipped.any()):
        return None
    # Erosion (a clipped 5×5 core) as the complement of a dilation, then a generous dilation back.
    core = 1 - be.maximum_filter(1 - clipped, 5)
    return be.maximum_filter(core, 31) > 0


def _one_per_star(positions: np.ndarray, heights: np.ndarray, min_separation: float) -> np.ndarray:
    """Indices of the highest peak in each group closer than ``min_separation`` (a flat-topped star has several)."""
    order = np.argsort(-heights)
    cell = max(float(min_separation), 1.0)
    taken: dict[tuple[int, int], list[int]] = {}
    keep = []
    for index in order:
        x, y = positions[index]
        gx, gy = int(x // cell), int(y // cell)
        near = (
            other for cx in (gx - 1, gx, gx + 1) for cy in (gy - 1, gy, gy + 1) for other in taken.get((cx, cy), ())
        )
        if any(np.hypot(*(positions[other] - positions[index])) < min_separation for other in near):
            continue
        taken.setdefault((gx, gy), []).append(index)
        keep.append(index)
    return np.asarray(sorted(keep), dtype=np.int64)


def _masked_sample(values: Any, mask: Any | None) -> Any:
    sub = values[::8, ::8]
    return sub[mask[::8, ::8]] if mask is not None else sub.ravel()


#: Star photometry: aperture radius and sky annulus (inner, outer), px at full size.
_APERTURE_PX = 5.0
_ANNULUS_PX = (7.0, 10.0)


def star_colour_gains(
    be: Backend, image: Any, positions: Any, *, min_stars: int = 20, saturation: float = 0.9
) -> tuple[float, float, float] | None:
    """Channel gains that make the stars white on average, from aperture photometry of each star.

    Each star's R, G, B flux: the sum inside a 3 px aperture minus the median of a 5–7 px sky
    annulus (the sky glow's own colour cancels). Stars that clip, lie too close to the edge or
    are not clearly above the sky in every channel are left out; the gains are the medians of
    G/R and G/B over the rest, so a few red or blue stars do not tint the result. ``None`` when
    fewer than ``min_stars`` stars could be measured.
    """
    xp = be.xp
    if positions is None or len(positions) < min_stars:
        return None
    reach = int(_ANNULUS_PX[1])
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    radius = np.hypot(dx, dy).ravel()
    aperture = np.flatnonzero(radius <= _APERTURE_PX)
    annulus = np.flatnonzero((radius >= _ANNULUS_PX[0]) & (radius <= _ANNULUS_PX[1]))
    centres = np.rint(np.asarray(positions, dtype=np.float64)).astype(np.int64)
    height, width = image.shape[:2]
    inside = (
        (centres[:, 0] >= reach)
        & (centres[:, 0] < width - reach)
        & (centres[:, 1] >= reach)
        & (centres[:, 1] < height - reach)
    )
    centres = centres[inside]
    if len(centres) < min_stars:
        return None
    rows = be.asarray(centres[:, 1:2] + dy.ravel()[None, :], dtype=xp.int64)
    cols = be.asarray(centres[:, 0:1] + dx.ravel()[None, :], dtype=xp.int64)
    patches = image[rows, cols]  # (stars, window pixels, 3)
    ring = patches[:, annulus, :]
    sky = xp.median(ring, axis=1)
    core = patches[:, aperture, :]
    flux = (core - sky[:, None, :]).sum(axis=1)
    sky_noise = xp.median(xp.abs(ring - sky[:, None, :]), axis=1) * np.float32(1.4826)
    clear = flux > np.float32(5 * np.sqrt(len(aperture))) * xp.maximum(sky_noise, np.float32(1e-9))
    good = clear.all(axis=1) & (core.max(axis=(1, 2)) < np.float32(saturation))
    flux = be.to_host(flux[good])
    if len(flux) < min_stars:
        return None
    return (
        float(np.median(flux[:, 1] / flux[:, 0])),
        1.0,
        float(np.median(flux[:, 1] / flux[:, 2])),
    )


def sqm_estimate(
    background_adu: float, exposure_s: float, zero_point: float, pixel_scale_arcsec: float
) -> float | None:
    """Sky brightness in mag/arcsec² from the background level: zp − 2.5·log10(ADU / s / arcsec²).

    Only as good as ``zero_point``, which is calibrated once against a real SQM meter.
    ``None`` when there is no light to measure.
    """
    if background_adu <= 0 or exposure_s <= 0:
        return None
    flux = background_adu / exposure_s / (pixel_scale_arcsec**2)
    return round(zero_point - 2.5 * math.log10(flux), 2)
