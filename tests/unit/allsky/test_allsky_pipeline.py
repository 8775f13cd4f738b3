"""The allsky pipeline on the CPU backend, on synthetic 16-bit Bayer frames with known stars.

The CPU (NumPy/OpenCV) results here are the reference the GPU agreement tests
(tests/unit/allsky/test_allsky_gpu.py) compare CuPy against.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from obsy.config import AllskyConfig, AllskyPipelineConfig
from obsy_allsky.backend import BackendUnavailableError, NumpyBackend, cupy_status, select_backend
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.chain import FramePipeline
from obsy_allsky.pipeline.debayer import bayer_mosaic, bayer_planes, debayer, normalize
from obsy_allsky.pipeline.fusion import bayer_cell_colour, fuse
from obsy_allsky.pipeline.stars import detect_stars, sqm_estimate
from tests.support.allsky_frames import FULL_SCALE, bracket, make_scene, match_stars

PEDESTAL = 500.0


@pytest.fixture(scope="module")
def be():
    return NumpyBackend()


@pytest.fixture(scope="module")
def night_scene():
    # Stars from about 8 to 150 sigma (matched filter, zenith sky) in a 10 s exposure; the sky brightens
    # 2.5x towards the horizon, where the faintest come down to about 5 sigma.
    return make_scene(1280, 960, n_stars=400, star_rate=(2500.0, 40000.0), seed=7)


@pytest.fixture(scope="module")
def moon_scene():
    return make_scene(960, 720, n_stars=150, moon=True, seed=3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.clip(a, 0, 1), np.clip(b, 0, 1)
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def dark_of(raw: np.ndarray) -> np.ndarray:
    return np.full(raw.shape, PEDESTAL, np.float32)


# --- stars ---------------------------------------------------------------------


def test_star_detection_recall_and_precision_on_a_single_frame(night_scene):
    raw = bracket(night_scene, [10.0])[0]
    result = FramePipeline(AllskyPipelineConfig(backend="numpy")).process([raw], [10.0], [dark_of(raw)])
    recall, precision = match_stars(result.stars.positions, night_scene.stars, radius=2.0)
    assert recall >= 0.95, f"recall {recall:.3f} ({result.stars.count} found of {len(night_scene.stars)})"
    assert precision >= 0.95, f"precision {precision:.3f}"
    assert result.stars.count == pytest.approx(len(night_scene.stars), rel=0.05)


def test_star_detection_in_a_moonlit_hdr_bracket(moon_scene):
    exposures = [0.05, 0.5, 5.0]
    raws = bracket(moon_scene, exposures)
    result = FramePipeline(AllskyPipelineConfig(backend="numpy")).process(raws, exposures, [dark_of(r) for r in raws])
    # The Moon's halo hides a few faint stars; none may be invented on its disc or the horizon.
    recall, precision = match_stars(result.stars.positions, moon_scene.stars, radius=2.0)
    assert recall >= 0.95, f"recall {recall:.3f}"
    assert precision >= 0.95, f"precision {precision:.3f}"


def test_no_stars_in_an_empty_sky(be):
    rng = np.random.default_rng(5)
    sky = (0.01 + rng.normal(0, 0.0005, (400, 600))).astype(np.float32)
    found = detect_stars(be, sky, threshold_sigma=5.0, mask=tone.circle_mask(be, 400, 600, (0.5, 0.5), 0.5))
    assert found.count <= 1
    assert found.background == pytest.approx(0.01, abs=2e-4)


def test_sqm_estimate_follows_the_sky_brightness():
    dark_sky = sqm_estimate(100.0, 10.0, zero_point=21.0, pixel_scale_arcsec=300.0)
    bright_sky = sqm_estimate(1000.0, 10.0, zero_point=21.0, pixel_scale_arcsec=300.0)
    assert dark_sky - bright_sky == pytest.approx(2.5, abs=0.01)  # 10× the light is 2.5 mag brighter
    assert sqm_estimate(100.0, 20.0, 21.0, 300.0) == pytest.approx(dark_sky + 0.75, abs=0.01)
    assert sqm_estimate(0.0, 10.0, 21.0, 300.0) is None


def test_sqm_of_a_frame_is_darker_for_a_darker_sky():
    pipeline = FramePipeline(AllskyPipelineConfig(backend="numpy"))
    values = []
    for sky_rate in (20.0, 200.0):
        scene = make_scene(640, 480, n_stars=50, sky_rate=sky_rate, seed=2)
        raw = bracket(scene, [10.0])[0]
        values.append(pipeline.process([raw], [10.0], [dark_of(raw)]).sqm)
    assert values[0] - values[1] == pytest.approx(2.5, abs=0.15)


# --- HDR fusion -------------------------------------------------------------------


@pytest.fixture(scope="module")
def moon_bracket(be, moon_scene):
    exposures = [0.01, 0.1, 1.0, 10.0, 60.0]
    linear = [normalize(be, raw, FULL_SCALE, np.float32(PEDESTAL)) for raw in bracket(moon_scene, exposures)]
    rgb = [np.clip(debayer(be, m, "RGGB", "malvar"), 0, 1) for m in linear]
    opencv = cv2.createMergeMertens().process([image * 255 for image in rgb])  # OpenCV scales floats by 1/255
    return linear, rgb, opencv


def test_rgb_fusion_matches_opencv_mertens(be, moon_bracket):
    _, rgb, opencv = moon_bracket
    ours = fuse(be, rgb)
    assert psnr(ours, opencv) > 60.0  # measured: above 130 dB, float32 rounding only


def test_bayer_domain_fusion_is_close_to_opencv_mertens(be, moon_bracket):
    linear, _, opencv = moon_bracket
    planes = [bayer_planes(be, np.clip(m, 0, 1), "RGGB") for m in linear]
    fused = debayer(be, bayer_mosaic(be, fuse(be, planes, colour=bayer_cell_colour), "RGGB"), "RGGB", "malvar")
    assert psnr(fused, opencv) > 40.0  # measured: 43.9 dB


def test_fusion_recovers_both_ends_of_the_bracket(be, moon_bracket):
    """The fused frame keeps the Moon's disc (clipped in the long frames) and the faint sky (black in the short)."""
    _, rgb, _ = moon_bracket
    fused = fuse(be, rgb)
    cy, cx = np.unravel_index(np.argmax(rgb[0].sum(axis=2)), rgb[0].shape[:2])
    disc = (slice(cy - 8, cy + 9), slice(cx - 8, cx + 9))
    assert rgb[-1][disc].min() >= 0.99  # flat white in the longest exposure
    assert fused[disc].std() > 0.05  # the disc's shading is back
    sky = (rgb[0].shape[0] // 2 + 150, rgb[0].shape[1] // 2 - 200)
    assert fused[sky].mean() > 20 * rgb[0][sky].mean() + 1e-3


def test_fusion_refuses_bad_brackets(be):
    frame = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="1 to 5 frames, not 6"):
        fuse(be, [frame] * 6)
    with pytest.raises(ValueError, match="same size"):
        fuse(be, [frame, np.zeros((8, 10, 3), np.float32)])


# --- debayer ----------------------------------------------------------------------


def _mosaic_of(rgb: np.ndarray, pattern: str) -> np.ndarray:
    colour = {"R": 0, "G": 1, "B": 2}
    mosaic = np.empty(rgb.shape[:2], np.float32)
    for i, letter in enumerate(pattern):
        y, x = divmod(i, 2)
        mosaic[y::2, x::2] = rgb[y::2, x::2, colour[letter]]
    return mosaic


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("method", ["bilinear", "malvar"])
def test_debayer_restores_a_flat_colour_for_every_pattern(be, pattern, method):
    rgb = np.empty((32, 48, 3), np.float32)
    rgb[:] = (0.6, 0.3, 0.1)
    out = debayer(be, _mosaic_of(rgb, pattern), pattern, method)
    assert np.allclose(out, rgb, atol=1e-5)


def test_malvar_beats_bilinear_on_fine_detail(be):
    ys, xs = np.mgrid[0:256, 0:256].astype(np.float32)
    zone = 0.5 + 0.4 * np.sin((xs**2 + ys**2) / 900.0)  # a zone plate: detail at every frequency
    rgb = np.stack([zone, 0.8 * zone + 0.1, 0.6 * zone + 0.2], axis=2).astype(np.float32)
    mosaic = _mosaic_of(rgb, "RGGB")
    inner = (slice(4, -4), slice(4, -4))
    bilinear = psnr(debayer(be, mosaic, "RGGB", "bilinear")[inner], rgb[inner])
    malvar = psnr(debayer(be, mosaic, "RGGB", "malvar")[inner], rgb[inner])
    assert malvar > bilinear + 2.0  # measured: 39.1 against 36.1 dB


def test_debayer_names_bad_input(be):
    with pytest.raises(ValueError, match="even width and height"):
        debayer(be, np.zeros((5, 8), np.float32), "RGGB")
    with pytest.raises(ValueError, match="unknown Bayer pattern 'RGBG'"):
        debayer(be, np.zeros((4, 8), np.float32), "RGBG")
    with pytest.raises(ValueError, match="unknown debayer method 'vng'"):
        debayer(be, np.zeros((4, 8), np.float32), "RGGB", "vng")


def test_dark_subtraction_removes_the_pedestal_and_hot_pixels(be):
    raw = np.full((16, 16), 600, np.uint16)
    dark = np.full((16, 16), 500, np.float32)
    raw[3, 4], dark[3, 4] = 40100, 40000  # a hot pixel, in the dark frame too
    out = normalize(be, raw, FULL_SCALE, dark)
    assert np.allclose(out, 100 / FULL_SCALE)
    assert normalize(be, np.zeros((4, 4), np.uint16), FULL_SCALE, np.full((4, 4), 500, np.float32)).min() == 0


# --- finishing stages -------------------------------------------------------------


def test_gray_world_balances_the_sky_inside_the_circle(be):
    image = np.empty((100, 100, 3), np.float32)
    image[:] = (0.2, 0.4, 0.1)
    mask = tone.circle_mask(be, 100, 100, (0.5, 0.5), 0.4)
    image[~mask] = (1.0, 0.0, 0.0)  # whatever lies outside must not count
    balanced = tone.white_balance(be, image.copy(), "gray_world", mask=mask)
    assert np.allclose(balanced[50, 50], 0.4, atol=1e-5)
    manual = tone.white_balance(be, image.copy(), "manual", gains=(2.0, 1.0, 4.0))
    assert np.allclose(manual[50, 50], (0.4, 0.4, 0.4), atol=1e-6)


def test_auto_stretch_puts_the_sky_on_the_target(be):
    rng = np.random.default_rng(1)
    sky = (0.02 + rng.normal(0, 0.001, (200, 200))).astype(np.float32)
    image = np.repeat(sky[:, :, None], 3, axis=2)
    out = tone.stretch(be, image, "auto", target_background=0.25)
    assert float(np.median(out)) == pytest.approx(0.25, abs=0.01)
    assert out.min() >= 0 and out.max() <= 1


def test_mtf_stretch_maps_the_midtones_balance_to_one_half(be):
    image = np.full((4, 4, 3), 0.1, np.float32)
    out = tone.stretch(be, image, "mtf", shadows=0.0, midtones=0.1)
    assert np.allclose(out, 0.5, atol=1e-6)


def test_median_filter_removes_an_isolated_hot_pixel(be):
    image = np.full((20, 20, 3), 0.1, np.float32)
    image[10, 10] = 1.0
    assert np.allclose(tone.median_filter(be, image, 3), 0.1)


def test_saturation_keeps_luminance_and_scales_colour(be):
    image = np.full((2, 2, 3), (0.5, 0.3, 0.2), np.float32)
    grey = tone.saturate(be, image.copy(), 0.0)
    assert np.allclose(grey, tone.luminance(image)[0, 0], atol=1e-6)
    assert np.allclose(tone.saturate(be, image.copy(), 1.0), image)


def test_mask_blackens_outside_the_image_circle(be):
    image = np.ones((100, 200, 3), np.float32)
    mask = tone.circle_mask(be, 100, 200, (0.5, 0.5), 0.5)
    out = tone.apply_mask(be, image, mask)
    assert out[50, 100].min() == 1 and out[0, 0].max() == 0 and out[50, 30].max() == 0


# --- the configured chain -----------------------------------------------------------


def test_chain_runs_the_configured_finish_in_order(night_scene):
    raw = bracket(night_scene, [10.0])[0]
    plain = AllskyPipelineConfig(backend="numpy", finish=[])
    masked = AllskyPipelineConfig(backend="numpy", finish=[{"stage": "stretch"}, {"stage": "mask"}])
    out_plain = FramePipeline(plain).process([raw], [10.0]).image
    out_masked = FramePipeline(masked).process([raw], [10.0]).image
    assert out_plain.dtype == np.uint8 and out_plain.shape == (960, 1280, 3)
    assert out_masked[0, 0].max() == 0
    # Linear sky sits near black; the stretched one is lifted towards the target background.
    assert np.median(out_masked[480, 600:700]) > 4 * np.median(out_plain[480, 600:700])


def test_hdr_chain_gives_the_same_size_in_both_fusion_domains(moon_scene):
    exposures = [0.01, 0.1, 1.0, 10.0, 60.0]
    raws = bracket(moon_scene, exposures)
    outputs = {}
    for domain in ("bayer", "rgb"):
        config = AllskyPipelineConfig(backend="numpy", fusion={"domain": domain})
        result = FramePipeline(config).process(raws, exposures, keep_timings=True)
        assert {"dark", "debayer", "hdr", "stars", "output"} <= set(result.timings)
        outputs[domain] = result.image.astype(np.float32) / 255
    assert psnr(outputs["bayer"], outputs["rgb"]) > 30.0


def test_unknown_stage_or_key_is_named():
    with pytest.raises(ValidationError, match="'blur'"):
        AllskyConfig.model_validate({"pipeline": {"finish": [{"stage": "blur"}]}})
    with pytest.raises(ValidationError, match="strength"):
        AllskyConfig.model_validate({"pipeline": {"finish": [{"stage": "median", "strength": 2}]}})


def test_chain_refuses_mismatched_exposure_lists(night_scene):
    raw = bracket(night_scene, [1.0])[0]
    with pytest.raises(ValueError, match="2 frames but 1 exposure times"):
        FramePipeline(AllskyPipelineConfig(backend="numpy")).process([raw, raw], [1.0])


# --- backend choice -------------------------------------------------------------------


def test_numpy_backend_on_request_and_cpu_fallback_without_a_gpu():
    assert select_backend("numpy").name == "numpy"
    cupy, reason = cupy_status()
    if cupy is None:
        assert select_backend("auto").name == "numpy"
        with pytest.raises(BackendUnavailableError, match="cupy"):
            select_backend("cupy")
    else:
        assert select_backend("auto").name == "cupy", reason
    with pytest.raises(ValueError, match="unknown backend 'opencl'"):
        select_backend("opencl")


# --- the picture without the overlay (what clouddetect judges) -----------------------------


def test_the_clean_picture_is_the_picture_without_the_overlay(night_scene):
    raw = bracket(night_scene, [10.0])[0]
    stages = [{"stage": "stretch"}, {"stage": "mask"}]
    overlay = {"stage": "overlay", "show": ["time", "exposure"], "cardinals": True}
    plain = FramePipeline(AllskyPipelineConfig(backend="numpy", finish=stages)).process([raw], [10.0], [dark_of(raw)])
    annotated = FramePipeline(
        AllskyPipelineConfig(backend="numpy", finish=[stages[0], overlay, stages[1]])  # a stage after the overlay too
    ).process([raw], [10.0], [dark_of(raw)])
    assert plain.clean is None  # no overlay: the picture itself is clean
    assert annotated.clean is not None and annotated.clean.dtype == np.uint8
    assert np.array_equal(annotated.clean, plain.image)  # the same stages, the overlay left out
    assert np.count_nonzero(np.any(annotated.image != annotated.clean, axis=2)) > 100  # the text is in the picture
