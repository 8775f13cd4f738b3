"""The arcsinh stretch (Lupton et al. 2004, PASP 116, 133; Siril's "asinh transformation").

``x' = (x - black) / (high - black)`` (0..1 above the black point), then for a mono image
``asinh(beta x') / asinh(beta)``; for colour every channel is multiplied by the same factor
``asinh(beta I) / (I asinh(beta))`` with ``I`` the mean of the channels, so each pixel's colour
ratios stay as they are (no washing out of bright stars to white) while the dynamic range is
compressed: faint parts are lifted about ``beta / asinh(beta)`` times, bright ones about
logarithmically. The black point is by default the sky's median less 2.8 MADN (as the STF's).
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826


def black_point(image: np.ndarray, shadows_clip: float = -2.8) -> float:
    """``median + shadows_clip x MADN`` of the image's finite pixels (all channels together)."""
    values = image[np.isfinite(image)].astype(np.float64)
    values = values[:: max(1, values.size // 500_000)]
    if values.size == 0:
        return 0.0
    median = float(np.median(values))
    return median + shadows_clip * MAD_TO_SIGMA * float(np.median(np.abs(values - median)))


def arcsinh_stretch(
    image: np.ndarray, *, beta: float = 100.0, black: float | None = None, high: float | None = None
) -> np.ndarray:
    """Mono (h x w) or colour (h x w x 3) linear image stretched to float32 0..1 (NaN -> 0)."""
    if beta <= 0:
        raise ValueError(f"the arcsinh stretch factor must be positive, not {beta}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"an arcsinh stretch needs an h x w or h x w x 3 image, not shape {image.shape}")
    black = black_point(image) if black is None else black
    finite = image[np.isfinite(image)]
    high = (float(finite.max()) if finite.size else black + 1.0) if high is None else high
    if high <= black:
        return np.zeros(image.shape, dtype=np.float32)
    x = np.clip((image.astype(np.float64) - black) / (high - black), 0.0, None)
    intensity = x if image.ndim == 2 else x.mean(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(
            intensity > 0, np.arcsinh(beta * intensity) / (intensity * np.arcsinh(beta)), beta / np.arcsinh(beta)
        )
    out = x * (factor if image.ndim == 2 else factor[..., None])
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)
