"""One frame through the pipeline: develop each exposure, fuse the bracket, measure, then the configured finish.

The front of the chain is fixed because its order is physics (dark before debayer, debayer
before fusion, stars on linear data); the ``finish`` stages run in the order the
configuration lists them, each with its own parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from obsy.config import AllskyPipelineConfig
from obsy_allsky.backend import Backend, select_backend
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.debayer import bayer_mosaic, bayer_planes, bin2x2, debayer, normalize
from obsy_allsky.pipeline.fusion import bayer_cell_colour, fuse, rgb_channels
from obsy_allsky.pipeline.stars import StarField, detect_stars, sqm_estimate


@dataclass
class ProcessedFrame:
    """The finished picture (8-bit RGB on the host) and what was measured on the way."""

    image: np.ndarray
    stars: StarField
    sqm: float | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


class FramePipeline:
    """Runs :class:`~obsy.config.AllskyPipelineConfig` on one backend; reusable frame after frame."""

    def __init__(self, config: AllskyPipelineConfig, backend: Backend | None = None) -> None:
        self.config = config
        self.backend = backend or select_backend(config.backend)

    def process(
        self,
        raws: Sequence[np.ndarray],
        exposures_s: Sequence[float],
        darks: Sequence[np.ndarray | None] | None = None,
        *,
        keep_timings: bool = False,
    ) -> ProcessedFrame:
        """Process an HDR bracket (1–5 raw frames with their exposure times) into a finished frame.

        ``darks``, where given, are master darks matching each raw (same exposure and temperature).
        ``keep_timings`` waits for the device after each stage so that the times are true (bench).
        """
        if len(raws) != len(exposures_s) or not raws:
            raise ValueError(f"{len(raws)} frames but {len(exposures_s)} exposure times")
        be, cfg = self.backend, self.config
        timings: dict[str, float] = {}

        def timed(stage: str, fn: Callable[[], Any]) -> Any:
            if not keep_timings:
                return fn()
            start = time.perf_counter()
            out = fn()
            be.synchronize()
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
            return out

        darks = darks or [None] * len(raws)
        linear = [
            timed(
                "dark",
                lambda raw=raw, dark=dark: normalize(
                    be, raw, cfg.full_scale, be.asarray(dark) if dark is not None else None
                ),
            )
            for raw, dark in zip(raws, darks, strict=True)
        ]
        longest = int(np.argmax(exposures_s))
        stars = timed("stars", lambda: self._stars(linear[longest]))
        sqm = sqm_estimate(
            stars.background * cfg.full_scale,
            exposures_s[longest],
            cfg.stars.sqm_zero_point,
            cfg.stars.pixel_scale_arcsec,
        )
        bracket = [linear[i] for i in np.argsort(exposures_s)]
        if len(bracket) > 1 and cfg.fusion.domain == "bayer" and cfg.bayer_pattern != "MONO":
            pattern = cfg.bayer_pattern

            def fuse_mosaics() -> Any:
                planes = [bayer_planes(be, mosaic, pattern) for mosaic in bracket]
                return bayer_mosaic(be, self._fuse(planes, bayer_cell_colour), pattern)

            mosaic = timed("hdr", fuse_mosaics)
            image = timed("debayer", lambda: debayer(be, mosaic, cfg.bayer_pattern, cfg.debayer))
        else:
            developed = [timed("debayer", lambda m=m: debayer(be, m, cfg.bayer_pattern, cfg.debayer)) for m in bracket]
            image = timed("hdr", lambda: self._fuse(developed, rgb_channels))
        height, width = image.shape[:2]
        mask = tone.circle_mask(be, height, width, cfg.circle_center, cfg.circle_radius)
        for stage in cfg.finish:
            image = timed(stage.stage, lambda stage=stage, image=image: self._finish(stage, image, mask))
        out = timed("output", lambda: be.to_host((be.xp.clip(image, 0.0, 1.0) * 255 + 0.5).astype(be.xp.uint8)))
        return ProcessedFrame(image=out, stars=stars, sqm=sqm, timings=timings)

    def _fuse(self, images: list[Any], colour: Callable[[Any], Any]) -> Any:
        f = self.config.fusion
        return fuse(
            self.backend,
            images,
            contrast=f.contrast_weight,
            saturation=f.saturation_weight,
            exposure=f.exposure_weight,
            colour=colour,
        )

    def _stars(self, mosaic: Any) -> StarField:
        """Stars on the mosaic binned 2×2 (one value per Bayer cell: no colour pattern, 4× fewer pixels)."""
        cfg, s = self.config, self.config.stars
        binned = bin2x2(mosaic)
        mask = tone.circle_mask(self.backend, binned.shape[0], binned.shape[1], cfg.circle_center, cfg.circle_radius)
        found = detect_stars(
            self.backend,
            binned,
            threshold_sigma=s.threshold_sigma,
            min_separation_px=max(3, s.min_separation_px // 2),
            mask=mask,
        )
        return found.scaled(2.0)

    def _finish(self, stage: Any, image: Any, mask: Any) -> Any:
        be = self.backend
        match stage.stage:
            case "white_balance":
                return tone.white_balance(be, image, stage.method, stage.gains, mask)
            case "stretch":
                return tone.stretch(
                    be,
                    image,
                    stage.method,
                    target_background=stage.target_background,
                    shadows_sigma=stage.shadows_sigma,
                    shadows=stage.shadows,
                    midtones=stage.midtones,
                    mask=mask,
                )
            case "median":
                return tone.median_filter(be, image, stage.size)
            case "saturation":
                return tone.saturate(be, image, stage.factor)
            case "mask":
                return tone.apply_mask(be, image, mask)
        raise ValueError(f"unknown finishing stage {stage.stage!r}")
