"""The stored picture: lossless PNG (8 and 16 bits), JPEG with the encoder named, linear FITS, the full chain."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from astropy.io import fits

from obsy.config import AllskyConfig, AllskyPipelineConfig, ConfigError, load_config
from obsy_allsky.backend import NumpyBackend
from obsy_allsky.pipeline.chain import FINISHING_STAGES, FramePipeline
from obsy_allsky.pipeline.output import ImageEncoder, encode_fits, encode_png
from tests.support.allsky_frames import bracket, make_scene

EXPOSURES = [0.05, 0.5, 5.0]


@pytest.fixture(scope="module")
def raws():
    scene = make_scene(640, 480, n_stars=80, moon=True, seed=6)
    return bracket(scene, EXPOSURES)


def decode(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), flags), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip_is_lossless(dtype):
    rng = np.random.default_rng(0)
    image = rng.integers(0, np.iinfo(dtype).max, (37, 53, 3), dtype=dtype, endpoint=True)
    back = decode(encode_png(image))
    assert back.dtype == dtype and np.array_equal(back, image)
    with pytest.raises(ValueError, match="8- or 16-bit"):
        encode_png(image.astype(np.float32))


def test_chain_png_16_bit_keeps_what_8_bits_round_away(raws):
    config = AllskyPipelineConfig(backend="numpy", output={"format": "png", "png_bit_depth": 16})
    pipeline = FramePipeline(config)
    frame = pipeline.process(raws, EXPOSURES)
    encoded = pipeline.encode(frame)
    assert (encoded.extension, encoded.content_type) == ("png", "image/png")
    back = decode(encoded.data)
    assert back.dtype == np.uint16 and np.array_equal(back, frame.image16)
    # The 8-bit picture is the 16-bit one rounded; the 16-bit one has the in-between levels.
    assert np.abs(frame.image16 / 257.0 - frame.image).max() <= 1.0
    assert len(np.unique(frame.image16)) > 4 * len(np.unique(frame.image))
    eight = FramePipeline(AllskyPipelineConfig(backend="numpy", output={"format": "png"}))
    frame8 = eight.process(raws, EXPOSURES)
    assert frame8.image16 is None and np.array_equal(decode(eight.encode(frame8).data), frame8.image)


def test_jpeg_on_the_cpu(raws):
    config = AllskyPipelineConfig(backend="numpy")
    pipeline = FramePipeline(config)
    frame = pipeline.process(raws, EXPOSURES)
    encoded = pipeline.encode(frame, jpeg_quality=95)
    assert (encoded.extension, encoded.encoder) == ("jpg", "opencv")
    back = decode(encoded.data)
    assert back.shape == frame.image.shape
    assert np.abs(back.astype(int) - frame.image.astype(int)).mean() < 2
    smaller = pipeline.encode(frame, jpeg_quality=30)
    assert len(smaller.data) < len(encoded.data)


def test_gpu_jpeg_asked_for_on_the_cpu_backend_falls_back():
    config = AllskyPipelineConfig(backend="numpy").output
    assert not ImageEncoder(NumpyBackend(), config).jpeg_on_gpu


def test_linear_fits_keeps_the_fused_hdr(raws):
    config = AllskyPipelineConfig(backend="numpy", output={"keep_linear": True})
    frame = FramePipeline(config).process(raws, EXPOSURES)
    assert frame.linear is not None and frame.linear.dtype == np.float32
    data = encode_fits(frame.linear, {"EXPTIME": (5.0, "longest exposure, s"), "NCOMBINE": 3})
    with fits.open(io.BytesIO(data)) as hdul:
        cube = hdul[0].data
        assert cube.shape == (3, 480, 640)
        assert hdul[0].header["NCOMBINE"] == 3
        assert np.array_equal(np.moveaxis(cube, 0, 2), frame.linear)
    assert FramePipeline(AllskyPipelineConfig(backend="numpy")).process(raws, EXPOSURES).linear is None


def test_every_stage_in_one_configured_chain(raws):
    finish = [
        {"stage": "white_balance", "method": "stars", "min_stars": 10},
        {"stage": "denoise"},
        {"stage": "median", "size": 3},
        {"stage": "dehaze", "strength": 0.5},
        {"stage": "stretch"},
        {"stage": "tone_map", "method": "asinh", "strength": 2.0},
        {"stage": "clarity"},
        {"stage": "saturation"},
        {"stage": "mask"},
        {"stage": "overlay"},
    ]
    assert {stage["stage"] for stage in finish} == set(FINISHING_STAGES)
    frame = FramePipeline(AllskyPipelineConfig(backend="numpy", finish=finish)).process(
        raws, EXPOSURES, keep_timings=True
    )
    assert set(frame.timings) >= set(FINISHING_STAGES)
    assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
    assert frame.image[0, 0].max() <= 255 and frame.image[240, 320].max() > 0


def test_unknown_stage_or_parameter_is_a_named_config_error(tmp_path):
    path = tmp_path / "obsy.yaml"
    path.write_text(
        "allsky:\n  pipeline:\n    finish:\n      - stage: sharpen\n      - stage: dehaze\n        strenght: 1\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    text = str(caught.value)
    assert "allsky.pipeline.finish.0" in text and "sharpen" in text and "dehaze" in text
    assert "strenght" in text
    with pytest.raises(ValueError, match="png_bit_depth"):
        AllskyConfig.model_validate({"pipeline": {"output": {"format": "png", "png_bit_depth": 12}}})
