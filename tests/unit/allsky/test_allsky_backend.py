"""The CPU backend's OpenCV operations against plain NumPy definitions of the same thing."""

from __future__ import annotations

import numpy as np
import pytest

from obsy_allsky.backend import Backend, NumpyBackend


@pytest.fixture(scope="module")
def be():
    return NumpyBackend()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).random((37, 53, 3), dtype=np.float32)


def reflect101(plane: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(plane, pad, mode="reflect")  # NumPy's "reflect" is OpenCV's REFLECT_101 (d c b | a b c d)


def test_box_filter_is_the_window_mean_with_reflected_borders(be, image):
    size, pad = 5, 2
    out = be.box_filter(image, size)
    for channel in range(3):
        padded = reflect101(image[:, :, channel], pad)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
        np.testing.assert_allclose(out[:, :, channel], windows.mean(axis=(2, 3)), atol=1e-6)


def test_minimum_and_maximum_filters_with_replicated_borders(be, image):
    plane = image[:, :, 0].copy()
    padded = np.pad(plane, 1, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
    assert np.array_equal(be.minimum_filter(plane, 3), windows.min(axis=(2, 3)))
    assert np.array_equal(be.maximum_filter(plane, 3), windows.max(axis=(2, 3)))
    # The generic definition (what a backend without its own gets) gives the same.
    assert np.array_equal(Backend.minimum_filter(be, plane, 3), windows.min(axis=(2, 3)))


def test_mix_channels_is_a_matrix_per_pixel(be, image):
    matrix = np.array([[0.2, 0.7, 0.1], [1.0, -1.0, 0.0]], np.float32)
    np.testing.assert_allclose(be.mix_channels(image, matrix), image @ matrix.T, atol=1e-6)
    luminance = be.mix_channels(image, matrix[:1])
    assert luminance.shape == image.shape[:2]
    out = image.copy()
    square = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 2]], np.float32)
    assert be.mix_channels(out, square, out=out) is out  # in place: channels swapped, blue doubled
    np.testing.assert_allclose(out, image[:, :, [1, 0, 2]] * [1, 1, 2], atol=1e-6)


def test_zero_outside_and_8_bit_output(be, image):
    mask = np.zeros(image.shape[:2], bool)
    mask[10:20, 5:40] = True
    out = be.zero_outside(image.copy(), mask)
    assert np.array_equal(out[mask], image[mask]) and not out[~mask].any()
    values = np.array([[[-0.5, 0.0, 0.001]], [[0.5, 0.999, 1.7]]], np.float32)
    assert be.to_uint8(values).tolist() == [[[0, 0, 0]], [[128, 255, 255]]]
    assert np.array_equal(be.to_uint8(values), Backend.to_uint8(be, values))


def test_map_and_row_blocks_keep_order_and_cover_every_row(be):
    assert be.map(lambda x: x * x, range(10)) == [x * x for x in range(10)]
    big = np.zeros((1000, 3000, 3), np.float32)  # 36 MB: several blocks

    def mark(block):
        block += 1

    assert be.in_row_blocks(mark, big) is big
    assert np.all(big == 1)
