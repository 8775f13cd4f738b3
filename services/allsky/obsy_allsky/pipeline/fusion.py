"""Mertens exposure fusion: blend an HDR bracket by Laplacian pyramids of per-pixel quality weights.

The algorithm and its constants follow OpenCV's ``MergeMertens`` (Mertens, Kautz and Van Reeth,
"Exposure Fusion", 2007) so that the result can be checked against ``cv2.createMergeMertens``:
contrast = |Laplacian| of the grey image, saturation = the channels' spread about their mean,
well-exposedness = Π exp(-(c - 0.5)² / 0.08), each raised to its weight; the pyramids go to
⌊log2(min(W, H))⌋ levels.

Two domains (``fusion.domain`` in the configuration):

* ``rgb``: OpenCV's method as it is, on debayered (H, W, 3) exposures. Every exposure has to be
  debayered first, and the pyramids carry three full-resolution channels.
* ``bayer`` (default): the same blending on the raw mosaics, each seen as four half-resolution
  planes (R, G1, G2, B: one 2×2 Bayer cell per pixel). The weights come from the cell's colour
  (R, mean of the greens, B), every plane of a cell gets the same weight, so colour is blended
  consistently, and only the fused mosaic is debayered. That is 3× fewer values in the pyramids,
  4× fewer weight pixels and one debayer instead of five, at the price of weights measured at
  half resolution (the PSNR against OpenCV is in docs/allsky.md and the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from obsy_allsky.backend import Backend

_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
#: Grey weights of OpenCV's RGB→grey conversion (the image is RGB here).
_GREY = (0.299, 0.587, 0.114)


def quality_weights(be: Backend, rgb: tuple[Any, Any, Any], contrast: float, saturation: float, exposure: float) -> Any:
    """Mertens' per-pixel weight of one exposure, given its red, green and blue planes in [0, 1]."""
    xp = be.xp
    r, g, b = rgb
    weight = xp.ones(r.shape, dtype=xp.float32)
    if contrast:
        grey = _GREY[0] * r + _GREY[1] * g + _GREY[2] * b
        weight *= _power(xp, xp.abs(be.correlate2d(grey, _LAPLACIAN)), contrast)
    if saturation:
        # The channels' standard deviation about their mean, as Σ(c − mean)² = Σ over pairs (c1 − c2)² / 3:
        # the same number with fewer temporaries.
        spread = r - g
        spread *= spread
        pair = g - b
        pair *= pair
        spread += pair
        xp.subtract(b, r, out=pair)
        pair *= pair
        spread += pair
        spread *= np.float32(1 / 3)
        weight *= _power(xp, xp.sqrt(spread, out=spread), saturation)
    if exposure:
        well = xp.ones_like(weight)
        for channel in (r, g, b):
            well *= xp.exp(-xp.square(channel - np.float32(0.5)) / np.float32(0.08))
        weight *= _power(xp, well, exposure)
    weight += np.float32(1e-12)
    return weight


def _power(xp: Any, values: Any, exponent: float) -> Any:
    """``values ** exponent`` in place, skipping the (slow) power for the usual exponent 1."""
    if exponent == 1:
        return values
    return xp.power(values, np.float32(exponent), out=values)


def rgb_channels(image: Any) -> tuple[Any, Any, Any]:
    return image[:, :, 0], image[:, :, 1], image[:, :, 2]


def bayer_cell_colour(planes: Any) -> tuple[Any, Any, Any]:
    """R, G, B of (h, w, 4) Bayer planes ordered R, G1, G2, B."""
    return planes[:, :, 0], (planes[:, :, 1] + planes[:, :, 2]) * np.float32(0.5), planes[:, :, 3]


def pyramid_levels(height: int, width: int) -> int:
    return int(math.log(min(height, width)) / math.log(2.0))


def fuse(
    be: Backend,
    images: Sequence[Any],
    *,
    contrast: float = 1.0,
    saturation: float = 1.0,
    exposure: float = 0.0,
    colour: Callable[[Any], tuple[Any, Any, Any]] = rgb_channels,
) -> Any:
    """Fuse 1–5 (H, W, C) float32 exposures in [0, 1] into one image (not clipped, like OpenCV).

    ``colour`` gives the R, G, B planes the weights are computed from: :func:`rgb_channels`
    for RGB images, :func:`bayer_cell_colour` for Bayer planes.
    """
    if not 1 <= len(images) <= 5:
        raise ValueError(f"exposure fusion takes 1 to 5 frames, not {len(images)}")
    shape = images[0].shape
    if any(image.shape != shape for image in images):
        raise ValueError("all frames of an HDR bracket must have the same size")
    if len(images) == 1:
        return images[0]
    # The exposures are independent up to the sums: the backend may run them side by side.
    weights = be.map(lambda image: quality_weights(be, colour(image), contrast, saturation, exposure), images)
    total = weights[0].copy()
    for weight in weights[1:]:
        total += weight
    levels = pyramid_levels(shape[0], shape[1])

    def contribution(pair: tuple[Any, Any]) -> list[Any]:
        image, weight = pair
        be.xp.divide(weight, total, out=weight)
        return _weighted_laplacian_pyramid(be, image, weight, levels)

    # As many pyramids at a time as the backend runs side by side, summed as they come: memory
    # stays at a few pyramids however long the bracket.
    pairs = list(zip(images, weights, strict=True))
    result: list[Any] = []
    for first in range(0, len(pairs), be.parallelism):
        for pyramid in be.map(contribution, pairs[first : first + be.parallelism]):
            if not result:
                result = pyramid
                continue
            for level, part in enumerate(pyramid):
                result[level] += part
    return collapse(be, result)


def _weighted_laplacian_pyramid(be: Backend, image: Any, weight: Any, levels: int) -> list[Any]:
    """Laplacian pyramid of ``image`` times the Gaussian pyramid of ``weight``, level by level."""
    gaussian = [image]
    weights = [weight]
    for _ in range(levels):
        gaussian.append(be.pyr_down(gaussian[-1]))
        weights.append(be.pyr_down(weights[-1]))
    out = []
    for level in range(levels + 1):
        band = gaussian[level]
        if level < levels:
            height, width = band.shape[:2]
            # The up-sampled copy is a fresh array: subtract into it rather than allocate again.
            up = be.pyr_up(gaussian[level + 1], height, width)
            band = be.xp.subtract(band, up, out=up)
        else:
            band = band.copy()
        band *= weights[level][:, :, None]
        out.append(band)
    return out


def collapse(be: Backend, pyramid: list[Any]) -> Any:
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        height, width = band.shape[:2]
        image = band + be.pyr_up(image, height, width)
    return image
