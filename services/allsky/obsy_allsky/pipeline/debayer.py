"""Dark subtraction and demosaicing of a Bayer frame into linear RGB."""

from __future__ import annotations

from typing import Any

import numpy as np

from obsy_allsky.backend import Backend

#: Row and column of the red and the blue pixel inside the 2×2 cell, per pattern.
_RED_BLUE = {
    "RGGB": ((0, 0), (1, 1)),
    "BGGR": ((1, 1), (0, 0)),
    "GRBG": ((0, 1), (1, 0)),
    "GBRG": ((1, 0), (0, 1)),
}

_BILINEAR_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_BILINEAR_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4

# Malvar, He and Cutler (2004), "High-quality linear interpolation for demosaicing of
# Bayer-patterned color images": bilinear plus a Laplacian correction from the known channel.
_MHC_G_AT_RB = (
    np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]], np.float32) / 8
)
#: The other colour at a green pixel whose same-colour neighbours lie in its row.
_MHC_ROW = (
    np.array(
        [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]], np.float32
    )
    / 8
)
#: ... whose same-colour neighbours lie in its column.
_MHC_COL = _MHC_ROW.T.copy()
#: Red at blue and blue at red.
_MHC_DIAG = (
    np.array(
        [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]], np.float32
    )
    / 8
)


def normalize(be: Backend, raw: Any, full_scale: float, dark: Any | None = None) -> Any:
    """Raw ADU → float32 in [0, 1], minus the dark frame (negative results clip to 0). In place: one buffer."""
    xp = be.xp
    image = xp.array(raw, dtype=xp.float32)  # a copy: the caller's frame stays as it was
    if dark is not None:
        xp.subtract(image, dark, out=image)
    xp.multiply(image, np.float32(1.0 / full_scale), out=image)
    return xp.maximum(image, np.float32(0), out=image)


def bin2x2(mosaic: Any) -> Any:
    """Mean of each 2×2 cell: (H, W) → (H/2, W/2), one colour-neutral value per Bayer cell."""
    h, w = mosaic.shape[0] // 2 * 2, mosaic.shape[1] // 2 * 2
    m = mosaic[:h, :w]
    return (m[0::2, 0::2] + m[0::2, 1::2] + m[1::2, 0::2] + m[1::2, 1::2]) * np.float32(0.25)


def bayer_planes(be: Backend, mosaic: Any, pattern: str) -> Any:
    """(H, W) mosaic → (H/2, W/2, 4) planes R, G1, G2, B (G1 shares the red row)."""
    (ry, rx), (by, bx) = _cell(pattern, mosaic.shape)
    return be.xp.stack([mosaic[ry::2, rx::2], mosaic[ry::2, bx::2], mosaic[by::2, rx::2], mosaic[by::2, bx::2]], axis=2)


def bayer_mosaic(be: Backend, planes: Any, pattern: str) -> Any:
    """The inverse of :func:`bayer_planes`."""
    height, width = planes.shape[0] * 2, planes.shape[1] * 2
    (ry, rx), (by, bx) = _cell(pattern, (height, width))
    mosaic = be.xp.empty((height, width), dtype=planes.dtype)
    mosaic[ry::2, rx::2] = planes[:, :, 0]
    mosaic[ry::2, bx::2] = planes[:, :, 1]
    mosaic[by::2, rx::2] = planes[:, :, 2]
    mosaic[by::2, bx::2] = planes[:, :, 3]
    return mosaic


def _cell(pattern: str, shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    if pattern not in _RED_BLUE:
        raise ValueError(f"unknown Bayer pattern {pattern!r}")
    if shape[0] % 2 or shape[1] % 2:
        raise ValueError(f"a Bayer frame needs even width and height, not {shape[1]}x{shape[0]}")
    return _RED_BLUE[pattern]


def debayer(be: Backend, mosaic: Any, pattern: str, method: str = "malvar") -> Any:
    """(H, W) Bayer mosaic → (H, W, 3) RGB. ``MONO`` repeats the plane into three channels."""
    xp = be.xp
    if pattern == "MONO":
        return xp.repeat(mosaic[:, :, None], 3, axis=2)
    _cell(pattern, mosaic.shape)
    if method == "bilinear":
        return _bilinear(be, mosaic, pattern)
    if method == "malvar":
        return _malvar(be, mosaic, pattern)
    raise ValueError(f"unknown debayer method {method!r}; use bilinear or malvar")


def _bilinear(be: Backend, mosaic: Any, pattern: str) -> Any:
    xp = be.xp
    (ry, rx), (by, bx) = _RED_BLUE[pattern]
    planes = xp.zeros((*mosaic.shape, 3), dtype=xp.float32)
    planes[ry::2, rx::2, 0] = mosaic[ry::2, rx::2]
    planes[ry::2, bx::2, 1] = mosaic[ry::2, bx::2]
    planes[by::2, rx::2, 1] = mosaic[by::2, rx::2]
    planes[by::2, bx::2, 2] = mosaic[by::2, bx::2]
    rgb = xp.empty_like(planes)
    rgb[:, :, 0] = be.correlate2d(planes[:, :, 0], _BILINEAR_RB)
    rgb[:, :, 1] = be.correlate2d(planes[:, :, 1], _BILINEAR_G)
    rgb[:, :, 2] = be.correlate2d(planes[:, :, 2], _BILINEAR_RB)
    return rgb


def _malvar(be: Backend, mosaic: Any, pattern: str) -> Any:
    xp = be.xp
    (ry, rx), (by, bx) = _RED_BLUE[pattern]
    g_at_rb = be.correlate2d(mosaic, _MHC_G_AT_RB)
    row = be.correlate2d(mosaic, _MHC_ROW)
    col = be.correlate2d(mosaic, _MHC_COL)
    diag = be.correlate2d(mosaic, _MHC_DIAG)
    rgb = xp.empty((*mosaic.shape, 3), dtype=xp.float32)
    # Where each of R, G, B comes from at each of the four pixels of the Bayer cell.
    sources = {
        (ry, rx): (mosaic, g_at_rb, diag),  # red pixels
        (by, bx): (diag, g_at_rb, mosaic),  # blue pixels
        (ry, bx): (row, mosaic, col),  # green in red rows: red left and right, blue above and below
        (by, rx): (col, mosaic, row),  # green in blue rows
    }

    def fill(item: tuple[tuple[int, int], tuple[Any, Any, Any]]) -> None:
        (y, x), planes = item
        for channel, plane in enumerate(planes):
            rgb[y::2, x::2, channel] = plane[y::2, x::2]

    be.map(fill, sources.items())  # four disjoint sub-lattices: side by side on the CPU
    return xp.maximum(rgb, np.float32(0), out=rgb)
