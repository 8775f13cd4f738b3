"""Finding stars in a frame and measuring their light (OpenCV and NumPy).

A frame is reduced to one channel and, for speed, to half resolution (2 x 2 means) for
everything that looks at the whole image: background, noise and detection. The sky
background (glow, moonlight, light pollution, the dark corners outside a fisheye circle)
is modelled on a grid of cells; star light is measured at full resolution in small
apertures at given positions, minus the background interpolated there. On an 8-megapixel
frame the whole preparation takes some tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CELL = 16  # full-resolution pixels per background cell: far larger than a star, smaller than a cloud


@dataclass(frozen=True)
class Detections:
    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    @property
    def xy(self) -> np.ndarray:
        return np.column_stack([self.x, self.y])


def to_gray(image: np.ndarray) -> np.ndarray:
    """One channel, keeping the sample type where OpenCV can (uint8, uint16, float32)."""
    if image.ndim == 3:
        if image.shape[2] == 1:
            image = image[:, :, 0]
        elif image.dtype in (np.uint8, np.uint16, np.float32):
            image = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2GRAY)
        else:
            image = image[:, :, :3].mean(axis=2)
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        image = image.astype(np.float32)
    return np.ascontiguousarray(image)


def _median3(cells: np.ndarray) -> np.ndarray:
    return cv2.medianBlur(cells, 3) if min(cells.shape) >= 3 else cells


def _sky_stats(residual: np.ndarray, sky: np.ndarray) -> tuple[float, float]:
    """Median and robust standard deviation of the residual over sky pixels (a sparse sample)."""
    sample = residual[::3, ::3][sky[::3, ::3]]
    if sample.size < 100:
        sample = residual[::3, ::3].ravel()
    centre = float(np.median(sample))
    return centre, max(1.4826 * float(np.median(np.abs(sample - centre))), 1e-6)


class PreparedFrame:
    """A frame with its background modelled; the basis of detection and photometry.

    The background: the half-resolution image is halved again and given a grey opening
    (minimum then maximum over 3 x 3), which removes stars; cell means of that are
    median-filtered. The opening sits below the true sky by about a noise sigma, so a
    second pass adds, per cell, the mean of the residual clipped above 2.5 sigma. Noise is
    measured on the sky only, the brighter 40 % of cells, never the dark corners.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.gray = to_gray(image)
        height, width = self.gray.shape
        self.shape = (height, width)
        half = cv2.resize(self.gray, (width // 2, height // 2), interpolation=cv2.INTER_AREA).astype(np.float32)
        quarter = cv2.resize(half, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
        opened = cv2.morphologyEx(quarter, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        cell_grid = (max(1, width // CELL), max(1, height // CELL))
        cells = _median3(cv2.resize(opened, cell_grid, interpolation=cv2.INTER_AREA))
        half_size = (half.shape[1], half.shape[0])
        sky = cv2.resize((cells >= np.percentile(cells, 60)).astype(np.uint8), half_size) > 0
        residual = cv2.subtract(half, cv2.resize(cells, half_size, interpolation=cv2.INTER_LINEAR))
        centre, noise = _sky_stats(residual, sky)
        offset = _median3(cv2.resize(cv2.min(residual, centre + 2.5 * noise), cell_grid, interpolation=cv2.INTER_AREA))
        residual = cv2.subtract(residual, cv2.resize(offset, half_size, interpolation=cv2.INTER_LINEAR))
        self.cells = cells + offset
        self.half_residual = residual
        _, self.noise_half = _sky_stats(residual, sky)
        # A 2 x 2 mean of independent pixels has half their noise.
        self.noise = 2.0 * self.noise_half
        self.background = float(np.median(self.cells))

    def background_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Background level per full-resolution pixel at (x, y), interpolated between cell centres."""
        rows, cols = self.cells.shape
        cell_h, cell_w = self.shape[0] / rows, self.shape[1] / cols
        coords = np.vstack([(np.asarray(y) + 0.5) / cell_h - 0.5, (np.asarray(x) + 0.5) / cell_w - 0.5])
        from scipy.ndimage import map_coordinates  # here, not at the top: importing the module stays light

        return map_coordinates(self.cells, coords, order=1, mode="nearest")

    def aperture_flux(self, x: np.ndarray, y: np.ndarray, half_size: int = 3) -> np.ndarray:
        """Background-subtracted sums in (2 h + 1)^2 pixel boxes centred on (x, y); NaN off the image."""
        h = half_size
        xi = np.rint(np.asarray(x, dtype=float)).astype(np.int64)
        yi = np.rint(np.asarray(y, dtype=float)).astype(np.int64)
        height, width = self.shape
        ok = (xi - h >= 0) & (yi - h >= 0) & (xi + h < width) & (yi + h < height)
        offsets = np.arange(-h, h + 1)
        rows = np.where(ok, yi, h)[:, None, None] + offsets[None, :, None]
        cols = np.where(ok, xi, h)[:, None, None] + offsets[None, None, :]
        sums = self.gray[rows, cols].sum(axis=(1, 2), dtype=np.float64)
        flux = sums - (2 * h + 1) ** 2 * self.background_at(xi, yi)
        return np.where(ok, flux, np.nan)

    def aperture_noise(self, half_size: int = 3) -> float:
        return self.noise * (2 * half_size + 1)


def detect_stars(frame: PreparedFrame, threshold_sigma: float = 5.0, max_stars: int = 2000) -> Detections:
    """Local maxima of the half-resolution residual above ``threshold_sigma``, brightest first,
    with centroids in full-resolution pixel coordinates."""
    residual = frame.half_residual
    smooth = cv2.GaussianBlur(residual, (3, 3), 0.7)
    # Noise of the smoothed image: this 3 x 3 kernel keeps about 0.45 of it.
    limit = threshold_sigma * frame.noise_half * 0.45
    peaks = (smooth >= cv2.dilate(smooth, np.ones((3, 3), np.uint8))) & (smooth > limit)
    ys, xs = np.nonzero(peaks)
    height, width = smooth.shape
    inside = (xs >= 1) & (ys >= 1) & (xs < width - 1) & (ys < height - 1)
    xs, ys = xs[inside], ys[inside]
    order = np.argsort(-smooth[ys, xs])[:max_stars]
    xs, ys = xs[order], ys[order]
    offsets = np.arange(-1, 2)
    window = residual[ys[:, None, None] + offsets[None, :, None], xs[:, None, None] + offsets[None, None, :]]
    positive = np.clip(window, 0, None)
    total = positive.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    cx = xs + (positive.sum(axis=1) * offsets).sum(axis=1) / safe
    cy = ys + (positive.sum(axis=2) * offsets).sum(axis=1) / safe
    # Half-resolution pixel (i) covers full-resolution pixels 2i and 2i + 1: centre at 2i + 0.5.
    x, y, flux = 2 * cx + 0.5, 2 * cy + 0.5, 4 * window.sum(axis=(1, 2))
    keep = ~_single_pixel(frame, xs, ys)
    return Detections(x[keep], y[keep], flux[keep])


def _single_pixel(frame: PreparedFrame, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Hot pixels and cosmic-ray hits: nearly all the light of the 4 x 4 full-resolution block
    around the peak in one pixel, which no star imaged through a lens does."""
    height, width = frame.shape
    offsets = np.arange(-1, 3)
    rows = np.clip(2 * ys[:, None, None] + offsets[None, :, None], 0, height - 1)
    cols = np.clip(2 * xs[:, None, None] + offsets[None, None, :], 0, width - 1)
    block = frame.gray[rows, cols].astype(np.float32) - frame.background_at(2 * xs + 0.5, 2 * ys + 0.5)[:, None, None]
    block = np.clip(block, 0, None)
    total = block.sum(axis=(1, 2))
    return block.max(axis=(1, 2)) > 0.8 * np.where(total > 0, total, np.inf)
