"""ACDNR-style noise reduction: brightness and colour smoothed separately, edges and stars kept.

PixInsight's ACDNR smooths lightness and chrominance with separate strengths and sizes and
protects structure above the noise. Here the edge-aware smoother is the guided filter (He,
Sun and Tang, 2013): a local linear model ``q = a·I + b`` per window of the guide ``I``,
with ``a = cov(I, p) / (var(I) + ε)``. Where the window is flat (variance well below ε) the
output is the window mean: noise goes; where an edge or a star makes the variance exceed ε,
``a`` → 1 and the pixel is kept. ε is ``(edge_sigma · noise)²``, with the noise measured on
the image itself, so "an edge" means "detail well above the noise". Only box filters and
element-wise arithmetic: the same code on both backends.

Colour is split into luminance Y and two colour differences (R − Y, B − Y). Y is filtered
guided by itself, the colour differences with a larger window guided by Y (computed at half
size, applied at full size: the "fast guided filter"), so colour noise is smoothed hard while
colour borders still follow the brightness edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from obsy_allsky.backend import Backend
from obsy_allsky.pipeline.tone import LUMA, luminance, sample


def guided_coefficients(be: Backend, guide: Any, source: Any, radius: int, eps: float) -> tuple[Any, Any]:
    """The window-averaged ``a`` and ``b`` of the guided filter: the output is ``a·guide + b``.

    Returned separately so that they can be computed on a reduced copy and applied at full size
    (the "fast guided filter").
    """
    size = 2 * radius + 1
    mean_i = be.box_filter(guide, size)
    mean_p = mean_i if source is guide else be.box_filter(source, size)
    covariance = be.box_filter(guide * source, size)
    covariance -= mean_i * mean_p
    variance = covariance if source is guide else be.box_filter(guide * guide, size) - mean_i * mean_i
    a = covariance / (variance + np.float32(eps))
    b = mean_p - a * mean_i
    return be.box_filter(a, size), be.box_filter(b, size)


def guided_filter(be: Backend, guide: Any, source: Any, radius: int, eps: float) -> Any:
    """Edge-preserving smoothing of ``source`` (single channel) following the edges of ``guide``."""
    a, b = guided_coefficients(be, guide, source, radius, eps)
    a *= guide
    a += b
    return a


def noise_sigma(be: Backend, plane: Any, mask: Any | None = None) -> float:
    """Pixel-to-pixel noise of a single-channel image: robust sigma of the residual from a 3×3 mean."""
    xp = be.xp
    residual = sample(plane - be.box_filter(plane, 3), mask, step=3)
    mad = float(xp.median(xp.abs(residual - xp.median(residual))))
    # plane − mean3x3 has variance σ²·(1 − 1/9) for white noise.
    return mad * 1.4826 / float(np.sqrt(8.0 / 9.0))


def denoise(
    be: Backend,
    image: Any,
    *,
    luminance_amount: float = 0.5,
    chrominance_amount: float = 1.0,
    luminance_radius: int = 2,
    chrominance_radius: int = 4,
    edge_sigma: float = 3.0,
    mask: Any | None = None,
) -> Any:
    """Smooth the noise of an (H, W, 3) image, brightness and colour separately; in place."""
    xp = be.xp
    y = luminance(image, be)
    sigma = max(noise_sigma(be, y, mask), 1e-6)
    eps = (edge_sigma * sigma) ** 2
    # The colour differences before Y changes.
    cr = image[:, :, 0] - y
    cb = image[:, :, 2] - y
    if luminance_amount > 0:
        smooth = guided_filter(be, y, y, luminance_radius, eps)
        y += (smooth - y) * np.float32(luminance_amount)
    if chrominance_amount > 0:
        # Colour is smooth: its filter runs at half size (radius halved) and its coefficients are
        # applied at full size with the full-size Y as guide, so colour borders follow Y's edges.
        height, width = y.shape
        y_half = be.pyr_down(y)
        radius = max(1, chrominance_radius // 2)
        for plane in (cr, cb):
            a, b = guided_coefficients(be, y_half, be.pyr_down(plane), radius, eps)
            smooth = be.pyr_up(a, height, width)
            smooth *= y
            smooth += be.pyr_up(b, height, width)
            smooth -= plane
            smooth *= np.float32(chrominance_amount)
            xp.add(plane, smooth, out=plane)
    # Back to RGB: R = Y + cr, B = Y + cb, G from the luminance equation.
    xp.add(y, cr, out=image[:, :, 0])
    xp.add(y, cb, out=image[:, :, 2])
    green = y - np.float32(LUMA[0]) * image[:, :, 0] - np.float32(LUMA[2]) * image[:, :, 2]
    xp.multiply(green, np.float32(1 / LUMA[1]), out=image[:, :, 1])
    return image
