"""Synthetic allsky frames rendered from the star catalogue, with known geometry and clouds.

Tests and benchmarks use these to check the transmission method against truth: the
frame is rendered for a site and time through a known :class:`~obsy.skymodel.SkyModel`,
each star dimmed by atmospheric extinction and by a :class:`CloudMask`, over a sky
background that clouds brighten (they reflect light pollution), with read and shot noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from obsy.astro import airmass
from obsy.skymodel import SkyModel, StarCatalogue

__all__ = ["CloudMask", "CloudPatches", "SyntheticSky", "UniformCloud", "airmass"]


class CloudMask:
    """Transmission of the sky (0 = opaque, 1 = clear) as a function of altitude and azimuth."""

    def transmission(self, alt: np.ndarray, az: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def cover(self, min_altitude: float, threshold: float, step: float = 0.5) -> float:
        """True cloud cover in percent: the share of the sky above ``min_altitude``, by solid
        angle, whose transmission is below ``threshold``."""
        alt, az = np.meshgrid(np.arange(min_altitude + step / 2, 90.0, step), np.arange(0.0, 360.0, step))
        weight = np.cos(np.radians(alt))
        cloudy = self.transmission(alt, az) < threshold
        return float(100.0 * (weight * cloudy).sum() / weight.sum())


@dataclass(frozen=True)
class UniformCloud(CloudMask):
    """The same transmission everywhere: 1 is clear, 0.4 a thin veil, 0.02 overcast."""

    value: float = 1.0

    def transmission(self, alt: np.ndarray, az: np.ndarray) -> np.ndarray:
        return np.full(np.shape(alt), self.value, dtype=float)


@dataclass(frozen=True)
class CloudPatches(CloudMask):
    """Clouds in round patches (centre altitude, azimuth, radius in degrees) over clear sky.

    Each patch's edge fades over ``edge`` degrees, centred on its radius, as real cloud edges do.
    """

    patches: tuple[tuple[float, float, float], ...] = field(default_factory=tuple)
    inside: float = 0.02
    edge: float = 6.0

    def transmission(self, alt: np.ndarray, az: np.ndarray) -> np.ndarray:
        alt_r, az_r = np.radians(alt), np.radians(az)
        opacity = np.zeros(np.shape(alt), dtype=float)
        for c_alt, c_az, radius in self.patches:
            ca, cz = math.radians(c_alt), math.radians(c_az)
            cos_d = np.sin(alt_r) * math.sin(ca) + np.cos(alt_r) * math.cos(ca) * np.cos(az_r - cz)
            distance = np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0)))
            opacity = np.maximum(opacity, np.clip((radius - distance) / self.edge + 0.5, 0.0, 1.0))
        return 1.0 - opacity * (1.0 - self.inside)


@dataclass(frozen=True)
class SyntheticSky:
    """How a frame is rendered: camera, photometry and noise."""

    model: SkyModel
    width: int
    height: int
    zero_point: float = 11.5  # magnitude of a star giving 1 ADU per second
    exposure_s: float = 10.0
    extinction: float = 0.25  # magnitudes per airmass
    psf_sigma: float = 1.1  # pixels
    background: float = 800.0  # ADU, clear night sky
    cloud_glow: float = 1200.0  # extra ADU where the sky is fully clouded
    read_noise: float = 6.0
    gain: float = 1.0  # electrons per ADU, for shot noise
    catalogue_limit: float = 6.5
    hot_pixels: int = 0  # single saturated pixels, as a real sensor has

    def render(
        self,
        catalogue: StarCatalogue,
        latitude: float,
        longitude: float,
        elevation: float,
        when: datetime,
        *,
        clouds: CloudMask | None = None,
        seed: int = 0,
        positions: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """A uint16 frame (one channel). ``positions`` (alt, az of the catalogue's stars to
        ``catalogue_limit``, as :meth:`StarCatalogue.altaz` gives them) saves recomputing them."""
        clouds = clouds or UniformCloud(1.0)
        rng = np.random.default_rng(seed)
        stars = catalogue.brighter_than(self.catalogue_limit)
        alt, az = positions if positions is not None else stars.altaz(latitude, longitude, elevation, when)
        up = alt > 0
        alt, az, mag = alt[up], az[up], stars.mag[up]

        # Sky background: brighter towards the horizon and where clouds are.
        ys, xs = np.mgrid[0 : self.height : 8, 0 : self.width : 8]
        sky_alt, sky_az = self.model.pixel_to_altaz(xs + 3.5, ys + 3.5)
        visible = np.nan_to_num(sky_alt, nan=-1.0) > 0
        safe_alt = np.where(visible, sky_alt, 1.0)
        cloudiness = 1.0 - clouds.transmission(safe_alt, sky_az)
        low = np.where(visible, self.background * (1.0 + 0.6 * (1 - np.sin(np.radians(safe_alt))) ** 3), 0.0)
        low = low + np.where(visible, self.cloud_glow * cloudiness, 0.0)
        import cv2

        frame = cv2.resize(low.astype(np.float32), (self.width, self.height), interpolation=cv2.INTER_LINEAR)

        # Stars: Gaussian images, dimmed by extinction and clouds.
        flux = self.exposure_s * 10 ** (-0.4 * (mag + self.extinction * (airmass(alt) - 1.0) - self.zero_point))
        flux *= clouds.transmission(alt, az)
        x, y = self.model.altaz_to_pixel(alt, az)
        half = math.ceil(4 * self.psf_sigma)
        inside = (x >= half) & (y >= half) & (x < self.width - half - 1) & (y < self.height - half - 1)
        x, y, flux = x[inside], y[inside], flux[inside]
        offsets = np.arange(-half, half + 1)
        xi, yi = np.floor(x).astype(int), np.floor(y).astype(int)
        px = xi[:, None, None] + offsets[None, None, :]
        py = yi[:, None, None] + offsets[None, :, None]
        d2 = (px - x[:, None, None]) ** 2 + (py - y[:, None, None]) ** 2
        stamps = np.exp(-d2 / (2 * self.psf_sigma**2))
        stamps *= (flux / stamps.sum(axis=(1, 2)))[:, None, None]
        np.add.at(
            frame,
            (np.broadcast_to(py, stamps.shape).ravel(), np.broadcast_to(px, stamps.shape).ravel()),
            stamps.ravel().astype(np.float32),
        )

        noise = np.sqrt(np.clip(frame, 0, None) / self.gain + self.read_noise**2).astype(np.float32)
        frame += noise * rng.standard_normal(frame.shape, dtype=np.float32)
        if self.hot_pixels:
            hot = rng.integers(0, [self.height, self.width], size=(self.hot_pixels, 2))
            frame[hot[:, 0], hot[:, 1]] = 65535.0
        return np.clip(frame + 100.0, 0, 65535).astype(np.uint16)
