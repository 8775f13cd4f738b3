"""CuPy and NumPy backends agree: every stage and the whole chain, CPU result as the reference.

Runs only where CuPy imports and finds a GPU; skipped otherwise with the reason (never faked).
"""

from __future__ import annotations

import numpy as np
import pytest

from obsy.config import AllskyPipelineConfig
from obsy_allsky.backend import CupyBackend, NumpyBackend, cupy_status
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.chain import FINISHING_STAGES, FramePipeline
from obsy_allsky.pipeline.contrast import clarity, dehaze
from obsy_allsky.pipeline.debayer import debayer, normalize
from obsy_allsky.pipeline.denoise import denoise
from obsy_allsky.pipeline.fusion import fuse
from obsy_allsky.pipeline.stars import detect_stars, star_colour_gains
from tests.support.allsky_frames import FULL_SCALE, bracket, make_scene, match_stars

_cupy, _reason = cupy_status()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_cupy is None, reason=f"no GPU backend: {_reason}")]

EXPOSURES = [0.01, 0.1, 1.0, 10.0, 60.0]


@pytest.fixture(scope="module")
def backends():
    return NumpyBackend(), CupyBackend(_cupy)


@pytest.fixture(scope="module")
def raws():
    scene = make_scene(1024, 768, n_stars=250, moon=True, seed=11)
    return scene, bracket(scene, EXPOSURES)


def _both(backends, fn):
    cpu, gpu = backends
    return fn(cpu), gpu.to_host(fn(gpu))


def test_debayer_agrees(backends, raws):
    _, frames = raws
    for method in ("bilinear", "malvar"):
        ref, out = _both(
            backends, lambda be, method=method: debayer(be, normalize(be, frames[3], FULL_SCALE), "RGGB", method)
        )
        np.testing.assert_allclose(out, ref, atol=1e-5)


def test_fusion_agrees(backends, raws):
    _, frames = raws

    def run(be):
        rgb = [debayer(be, normalize(be, f, FULL_SCALE), "RGGB", "malvar") for f in frames]
        return fuse(be, rgb)

    ref, out = _both(backends, run)
    # Odd-sized pyramid levels differ in their last row/column (see backend.pyr_up): compare inside.
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(out[inner], ref[inner], atol=2e-3)
    assert 10 * np.log10(1 / np.mean((np.clip(out, 0, 1) - np.clip(ref, 0, 1)) ** 2)) > 50


def test_stretch_and_colour_agree(backends, raws):
    _, frames = raws

    def run(be):
        rgb = debayer(be, normalize(be, frames[3], FULL_SCALE), "RGGB", "malvar")
        mask = tone.circle_mask(be, rgb.shape[0], rgb.shape[1], (0.5, 0.5), 0.5)
        out = tone.white_balance(be, rgb, "gray_world", mask=mask)
        out = tone.stretch(be, out, "auto", mask=mask)
        out = tone.median_filter(be, out, 3)
        return tone.apply_mask(be, tone.saturate(be, out, 1.3), mask)

    ref, out = _both(backends, run)
    np.testing.assert_allclose(out, ref, atol=2e-3)


def test_star_detection_agrees(backends, raws):
    _, frames = raws
    cpu, gpu = backends
    found = []
    for be in (cpu, gpu):
        lum = tone.luminance(debayer(be, normalize(be, frames[3], FULL_SCALE), "RGGB", "malvar"))
        mask = tone.circle_mask(be, lum.shape[0], lum.shape[1], (0.5, 0.5), 0.5)
        found.append(detect_stars(be, lum, mask=mask))
    recall, precision = match_stars(found[1].positions, found[0].positions, radius=0.5)
    assert recall >= 0.99 and precision >= 0.99
    assert found[1].background == pytest.approx(found[0].background, rel=1e-3)


def test_whole_chain_agrees(backends, raws):
    _, frames = raws
    config = AllskyPipelineConfig(backend="numpy")
    cpu_result = FramePipeline(config, backends[0]).process(frames, EXPOSURES)
    gpu_result = FramePipeline(config, backends[1]).process(frames, EXPOSURES)
    difference = np.abs(cpu_result.image.astype(int) - gpu_result.image.astype(int))
    assert np.percentile(difference, 99.9) <= 2  # 8-bit levels
    assert gpu_result.stars.count == pytest.approx(cpu_result.stars.count, abs=2)
    assert gpu_result.sqm == pytest.approx(cpu_result.sqm, abs=0.01)


def _stretched(be, frames):
    rgb = debayer(be, normalize(be, frames[3], FULL_SCALE), "RGGB", "malvar")
    mask = tone.circle_mask(be, rgb.shape[0], rgb.shape[1], (0.5, 0.5), 0.5)
    return tone.stretch(be, rgb, "auto", mask=mask), mask


@pytest.mark.parametrize(
    "stage",
    [
        lambda be, img, mask: denoise(be, img, mask=mask),
        lambda be, img, mask: dehaze(be, img, mask=mask),
        lambda be, img, mask: clarity(be, img),
        lambda be, img, mask: tone.tone_map(be, img, "asinh", 3.0),
        lambda be, img, mask: tone.tone_map(be, img, "reinhard", 2.0),
    ],
    ids=["denoise", "dehaze", "clarity", "tone_map_asinh", "tone_map_reinhard"],
)
def test_finishing_stages_agree(backends, raws, stage):
    _, frames = raws

    def run(be):
        image, mask = _stretched(be, frames)
        return stage(be, image, mask)

    ref, out = _both(backends, run)
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(out[inner], ref[inner], atol=3e-3)


def test_star_colour_gains_agree(backends, raws):
    scene, frames = raws
    cpu, gpu = (
        star_colour_gains(be, debayer(be, normalize(be, frames[3], FULL_SCALE), "RGGB"), scene.stars, min_stars=10)
        for be in backends
    )
    assert cpu is not None and gpu == pytest.approx(cpu, rel=1e-4)


def test_every_stage_chain_agrees_with_overlay_and_16_bit_output(backends, raws):
    _, frames = raws
    finish = [{"stage": name} for name in FINISHING_STAGES if name != "white_balance"]
    finish.insert(0, {"stage": "white_balance", "method": "stars", "min_stars": 10})
    config = AllskyPipelineConfig(backend="numpy", finish=finish, output={"format": "png", "png_bit_depth": 16})
    cpu_result = FramePipeline(config, backends[0]).process(frames, EXPOSURES)
    gpu_result = FramePipeline(config, backends[1]).process(frames, EXPOSURES)
    difference = np.abs(cpu_result.image16.astype(int) - gpu_result.image16.astype(int))
    assert np.percentile(difference, 99.5) <= 3 * 257


def test_names_on_the_sky_agree(backends):
    """The names overlay's lines, rings and labels blended on the device as on the host."""
    from datetime import UTC, datetime

    from obsy.config import AllskyOverlayStage, SiteConfig
    from obsy.skymodel import SkyModel
    from obsy_allsky.pipeline.overlay import FrameInfo, overlay

    stage = AllskyOverlayStage.model_validate({"stage": "overlay", "sky": {"star_magnitude": 3.0}})
    model = SkyModel(511.5, 383.5, 380.0 / (np.pi / 2), 20.0)
    info = FrameInfo(
        taken_at=datetime(2026, 1, 15, 22, 0, tzinfo=UTC),
        sky_model=model,
        site=SiteConfig(latitude=48.2, longitude=16.4, elevation=180),
    )
    base = np.random.default_rng(5).uniform(0, 0.3, (768, 1024, 3)).astype(np.float32)

    def run(be):
        return overlay(
            be, be.asarray(base.copy()), stage, info, stars=None, sqm=None, circle_center=(0.5, 0.5), circle_radius=0.5
        )

    ref, out = _both(backends, run)
    assert np.abs(ref - base).max() > 0.5  # names were drawn
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_gpu_jpeg_encoding(backends, raws):
    pytest.importorskip("nvidia.nvimgcodec", reason="nvImageCodec not installed (obsy-allsky[gpu])")
    _, frames = raws
    pipeline = FramePipeline(AllskyPipelineConfig(backend="numpy"), backends[1])
    frame = pipeline.process(frames, EXPOSURES)
    encoded = pipeline.encode(frame, jpeg_quality=95)
    assert encoded.encoder == "nvimgcodec"
    import cv2

    back = cv2.cvtColor(cv2.imdecode(np.frombuffer(encoded.data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.abs(back.astype(int) - frame.image.astype(int)).mean() < 2
