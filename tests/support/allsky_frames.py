"""Synthetic allsky frames with known truth: 16-bit Bayer mosaics with stars at known positions, and HDR brackets.

The scene is linear sky radiance in electrons per second per pixel: a smooth background with a
horizon gradient inside the image circle, Gaussian stars (sigma ``psf_sigma`` px) of random
brightness, optionally a bright Moon-like disc. A frame integrates it for ``exposure_s``,
adds Gaussian read noise and shot noise, and clips at the 16-bit full scale, which is what
makes a bracket necessary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_SCALE = 65535.0
#: Relative response of the R, G, B pixels to a white star and to the sky.
CHANNEL_RESPONSE = (0.8, 1.0, 0.7)


@dataclass
class SkyScene:
    width: int
    height: int
    radiance: np.ndarray  # (H, W, 3) electrons/s per pixel, already multiplied by the channel response
    stars: np.ndarray  # (N, 2) x, y of stars inside the circle


def make_scene(
    width: int,
    height: int,
    *,
    n_stars: int = 300,
    psf_sigma: float = 1.3,
    sky_rate: float = 40.0,
    star_rate: tuple[float, float] = (4000.0, 40000.0),
    moon: bool = False,
    seed: int = 1,
) -> SkyScene:
    rng = np.random.default_rng(seed)
    cx, cy, radius = width / 2, height / 2, 0.5 * min(width, height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot(xs + 0.5 - cx, ys + 0.5 - cy) / radius
    sky = sky_rate * (1.0 + 1.5 * np.clip(r, 0, 1) ** 4)  # brighter towards the horizon
    sky[r > 1] = 0.0
    luminance = sky.astype(np.float32)
    stars = _star_positions(rng, n_stars, cx, cy, radius * 0.95, min_distance=8 * psf_sigma)
    rates = np.exp(rng.uniform(np.log(star_rate[0]), np.log(star_rate[1]), len(stars)))
    half = int(np.ceil(4 * psf_sigma))
    for (x, y), rate in zip(stars, rates, strict=True):
        x0, y0 = round(x) - half, round(y) - half
        gy, gx = np.mgrid[y0 : y0 + 2 * half + 1, x0 : x0 + 2 * half + 1]
        psf = np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * psf_sigma**2))  # x, y: pixel-index coordinates
        luminance[y0 : y0 + 2 * half + 1, x0 : x0 + 2 * half + 1] += rate * psf / (2 * np.pi * psf_sigma**2)
    if moon:
        mx, my, mr = cx + 0.3 * radius, cy - 0.2 * radius, 0.04 * radius
        d = np.hypot(xs - mx, ys - my)
        luminance += 3e6 * np.clip(1.0 - d / mr, 0, 1) ** 0.2 + 2e3 * np.exp(-d / (0.3 * radius))
    radiance = luminance[:, :, None] * np.asarray(CHANNEL_RESPONSE, np.float32)
    return SkyScene(width, height, radiance.astype(np.float32), stars)


def _star_positions(rng, n, cx, cy, radius, *, min_distance) -> np.ndarray:
    """Random positions inside the circle, no two closer than ``min_distance`` (pixel-centre coordinates)."""
    chosen: list[tuple[float, float]] = []
    attempts = 0
    while len(chosen) < n and attempts < n * 200:
        attempts += 1
        rho, phi = radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        x, y = cx + rho * np.cos(phi), cy + rho * np.sin(phi)
        if all((x - a) ** 2 + (y - b) ** 2 >= min_distance**2 for a, b in chosen):
            chosen.append((x, y))
    # Stored as pixel-index coordinates (the detector reports the centre of pixel i as i).
    return np.asarray(chosen, dtype=np.float64).reshape(-1, 2) - 0.5


def bayer_frame(scene: SkyScene, exposure_s: float, *, read_noise: float = 3.0, seed: int = 2) -> np.ndarray:
    """One RGGB 16-bit exposure of the scene (shot and read noise, clipped at full scale)."""
    rng = np.random.default_rng(seed)
    mosaic = np.empty((scene.height, scene.width), np.float32)
    rad = scene.radiance
    mosaic[0::2, 0::2] = rad[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rad[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rad[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = rad[1::2, 1::2, 2]
    electrons = mosaic * exposure_s
    noisy = electrons + rng.standard_normal(electrons.shape, dtype=np.float32) * np.sqrt(electrons + read_noise**2)
    return np.clip(noisy + 500.0, 0, FULL_SCALE).astype(np.uint16)  # 500 ADU pedestal, as cameras have


def bracket(scene: SkyScene, exposures_s: list[float], seed: int = 2) -> list[np.ndarray]:
    return [bayer_frame(scene, t, seed=seed + i) for i, t in enumerate(exposures_s)]


def match_stars(found: np.ndarray, truth: np.ndarray, radius: float = 2.0) -> tuple[float, float]:
    """Recall and precision of ``found`` against ``truth`` (one-to-one, nearest within ``radius`` px)."""
    if len(truth) == 0 or len(found) == 0:
        return 0.0, 0.0
    distances = np.hypot(found[:, None, 0] - truth[None, :, 0], found[:, None, 1] - truth[None, :, 1])
    matched_truth: set[int] = set()
    true_positives = 0
    for i in np.argsort(distances.min(axis=1)):
        j = int(np.argmin(np.where(np.isin(np.arange(len(truth)), list(matched_truth)), np.inf, distances[i])))
        if distances[i, j] <= radius and j not in matched_truth:
            matched_truth.add(j)
            true_positives += 1
    return true_positives / len(truth), true_positives / len(found)
