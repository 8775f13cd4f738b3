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

from obsy_allsky.backend import Backend, select_backend
from obsy_allsky.config import AllskyPipelineConfig
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.contrast import clarity, dehaze
from obsy_allsky.pipeline.debayer import bayer_mosaic, bayer_planes, bin2x2, debayer, normalize
from obsy_allsky.pipeline.denoise import denoise
from obsy_allsky.pipeline.fusion import bayer_cell_colour, fuse, rgb_channels
from obsy_allsky.pipeline.output import EncodedImage, ImageEncoder
from obsy_allsky.pipeline.overlay import FrameInfo, overlay
from obsy_allsky.pipeline.stars import StarField, detect_stars, sqm_estimate


@dataclass
class ProcessedFrame:
    """The finished picture (8-bit RGB on the host) and what was measured on the way.

    ``image16`` is the finished picture at 16 bits (only for 16-bit PNG output), ``linear``
    the fused linear RGB before the finish (only with ``output.keep_linear``, for FITS),
    ``clean`` the same picture without the overlay (8-bit RGB; only when an overlay stage runs):
    what clouddetect judges, since text and names on the sky defeat its star matching.
    """

    image: np.ndarray
    stars: StarField
    sqm: float | None
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU-seconds of this process per stage
    image16: np.ndarray | None = None
    linear: np.ndarray | None = None
    clean: np.ndarray | None = None
    device_image: Any = field(default=None, repr=False)  # what the encoder reads (GPU JPEG: no host copy)

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


class FramePipeline:
    """Runs :class:`~obsy_allsky.config.AllskyPipelineConfig` on one backend; reusable frame after frame."""

    def __init__(self, config: AllskyPipelineConfig, backend: Backend | None = None) -> None:
        self.config = config
        self.backend = backend or select_backend(config.backend)
        self.encoder = ImageEncoder(self.backend, config.output)

    def process(
        self,
        raws: Sequence[np.ndarray],
        exposures_s: Sequence[float],
        darks: Sequence[np.ndarray | None] | None = None,
        *,
        info: FrameInfo | None = None,
        keep_timings: bool = False,
    ) -> ProcessedFrame:
        """Process an HDR bracket (1–5 raw frames with their exposure times) into a finished frame.

        ``darks``, where given, are master darks matching each raw (same exposure and temperature).
        ``info`` is what the overlay stage writes (time, exposure, sun and moon).
        ``keep_timings`` waits for the device after each stage so that the times are true (bench), and
        records each stage's wall time and CPU-seconds.
        """
        if len(raws) != len(exposures_s) or not raws:
            raise ValueError(f"{len(raws)} frames but {len(exposures_s)} exposure times")
        be, cfg = self.backend, self.config
        timings: dict[str, float] = {}
        cpu_timings: dict[str, float] = {}

        def timed(stage: str, fn: Callable[[], Any]) -> Any:
            if not keep_timings:
                return fn()
            start, start_cpu = time.perf_counter(), time.process_time()
            out = fn()
            be.synchronize()
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
            cpu_timings[stage] = cpu_timings.get(stage, 0.0) + time.process_time() - start_cpu
            return out

        darks = darks or [None] * len(raws)

        def develop(pair: tuple[np.ndarray, np.ndarray | None]) -> Any:
            raw, dark = pair
            return normalize(be, raw, cfg.full_scale, be.asarray(dark) if dark is not None else None)

        linear = timed("dark", lambda: be.map(develop, zip(raws, darks, strict=True)))
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
                planes = be.map(lambda mosaic: bayer_planes(be, mosaic, pattern), bracket)
                return bayer_mosaic(be, self._fuse(planes, bayer_cell_colour), pattern)

            mosaic = timed("hdr", fuse_mosaics)
            image = timed("debayer", lambda: debayer(be, mosaic, cfg.bayer_pattern, cfg.debayer))
        else:
            developed = [timed("debayer", lambda m=m: debayer(be, m, cfg.bayer_pattern, cfg.debayer)) for m in bracket]
            image = timed("hdr", lambda: self._fuse(developed, rgb_channels))
        height, width = image.shape[:2]
        fused_linear = be.to_host(image).copy() if cfg.output.keep_linear else None
        context = _FinishContext(
            mask=tone.circle_mask(be, height, width, cfg.circle_center, cfg.circle_radius),
            config=cfg,
            stars=stars,
            sqm=sqm,
            info=info,
        )
        clean = None  # the picture without the overlay, finished by the same stages
        for stage in cfg.finish:
            run = FINISHING_STAGES[stage.stage]
            if stage.stage == "overlay":
                if clean is None:
                    clean = image.copy()  # the overlay draws in place
            elif clean is not None:  # a stage after the overlay: the clean picture gets it too
                clean = timed(stage.stage, lambda run=run, stage=stage, clean=clean: run(be, clean, stage, context))
            image = timed(stage.stage, lambda run=run, stage=stage, image=image: run(be, image, stage, context))
        frame = timed("output", lambda: self._output(image))
        frame.stars, frame.sqm, frame.linear = stars, sqm, fused_linear
        if clean is not None:
            frame.clean = timed("clean", lambda: be.to_host(be.to_uint8(clean)))
        frame.timings, frame.cpu_timings = timings, cpu_timings
        return frame

    def encode(self, frame: ProcessedFrame, jpeg_quality: int = 90) -> EncodedImage:
        """The file to store, per ``output`` in the configuration (JPEG on the GPU where it can)."""
        if frame.image16 is not None:
            return self.encoder.encode(frame.image16)
        source = frame.device_image if frame.device_image is not None else frame.image
        return self.encoder.encode(source, jpeg_quality)

    def _output(self, image: Any) -> ProcessedFrame:
        """8-bit RGB on the host (and on the device for a GPU JPEG encoder; 16-bit for 16-bit PNG)."""
        be, out = self.backend, self.config.output
        image16 = None
        if out.format == "png" and out.png_bit_depth == 16:
            scaled = be.xp.clip(image, 0.0, 1.0) * np.float32(65535)
            scaled += np.float32(0.5)
            image16 = be.to_host(scaled.astype(be.xp.uint16))
        device = be.to_uint8(image)
        return ProcessedFrame(
            image=self.backend.to_host(device),
            stars=None,  # filled in by process()
            sqm=None,
            image16=image16,
            device_image=device if self.encoder.jpeg_on_gpu else None,
        )

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


@dataclass
class _FinishContext:
    """What the finishing stages may use besides the image."""

    mask: Any
    config: AllskyPipelineConfig
    stars: StarField
    sqm: float | None
    info: FrameInfo | None


#: Each finishing stage: (backend, image, its configuration, context) → image. In place where it can.
FinishingStage = Callable[[Backend, Any, Any, _FinishContext], Any]

FINISHING_STAGES: dict[str, FinishingStage] = {
    "white_balance": lambda be, image, stage, ctx: tone.white_balance(
        be, image, stage.method, stage.gains, ctx.mask, stars=ctx.stars.positions, min_stars=stage.min_stars
    ),
    "stretch": lambda be, image, stage, ctx: tone.stretch(
        be,
        image,
        stage.method,
        target_background=stage.target_background,
        shadows_sigma=stage.shadows_sigma,
        shadows=stage.shadows,
        midtones=stage.midtones,
        mask=ctx.mask,
    ),
    "median": lambda be, image, stage, ctx: tone.median_filter(be, image, stage.size),
    "saturation": lambda be, image, stage, ctx: tone.saturate(be, image, stage.factor),
    "mask": lambda be, image, stage, ctx: tone.apply_mask(be, image, ctx.mask),
    "denoise": lambda be, image, stage, ctx: denoise(
        be,
        image,
        luminance_amount=stage.luminance,
        chrominance_amount=stage.chrominance,
        luminance_radius=stage.luminance_radius,
        chrominance_radius=stage.chrominance_radius,
        edge_sigma=stage.edge_sigma,
        mask=ctx.mask,
    ),
    "dehaze": lambda be, image, stage, ctx: dehaze(
        be,
        image,
        strength=stage.strength,
        patch_px=stage.patch_px,
        min_transmission=stage.min_transmission,
        mask=ctx.mask,
    ),
    "clarity": lambda be, image, stage, ctx: clarity(be, image, amount=stage.amount, levels=stage.levels),
    "tone_map": lambda be, image, stage, ctx: tone.tone_map(be, image, stage.method, stage.strength, stage.white),
    "overlay": lambda be, image, stage, ctx: overlay(
        be,
        image,
        stage,
        ctx.info,
        stars=ctx.stars.count,
        sqm=ctx.sqm,
        circle_center=ctx.config.circle_center,
        circle_radius=ctx.config.circle_radius,
    ),
}
