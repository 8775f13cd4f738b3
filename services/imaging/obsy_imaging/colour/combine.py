"""Channels from filters: RGB and LRGB, and the narrowband palettes HOO and SHO.

A palette maps the red, green and blue channels to filters' stacks:

| palette | red | green | blue |
|---|---|---|---|
| ``rgb`` | R | G | B |
| ``lrgb`` | R | G | B, then the luminance replaced by L's |
| ``hoo`` | Hα | OIII | OIII |
| ``sho`` | SII | Hα | OIII (the "Hubble palette") |

Filter names are matched without case, spaces, dashes and underscores, with the usual
spellings (``Red``/``R``, ``Ha``/``H-alpha``/``Halpha``, ``OIII``/``O3``, ``L``/``Lum``/``Luminance``…).

**LRGB** (:func:`combine_lrgb`) on linear data: the colour image's luminance ``Y`` (the mean of
its three channels, above the sky) is replaced by L's, scaled to Y by a least-squares line over
the pixels: each channel is multiplied by ``L' / Y`` (where Y is above the sky's noise; the
channels are left as they are elsewhere). The colour ratios of every pixel stay; L's better
signal-to-noise takes the place of the RGB's.

:func:`compose` is the whole chain: aligned, gradients removed per filter, combined, the sky
neutralised and the white balanced; linear, float32 height x width x 3, for a stretch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from obsy_imaging.colour.align import align_stacks
from obsy_imaging.colour.background import remove_gradient
from obsy_imaging.colour.neutralise import WhiteBalance, background_levels, background_noise, neutralise_background
from obsy_imaging.colour.neutralise import white_balance as balance

PALETTES: dict[str, tuple[str, str, str]] = {
    "rgb": ("R", "G", "B"),
    "lrgb": ("R", "G", "B"),
    "hoo": ("Ha", "OIII", "OIII"),
    "sho": ("SII", "Ha", "OIII"),
}
_ALIASES = {
    "R": {"r", "red"},
    "G": {"g", "green"},
    "B": {"b", "blue"},
    "L": {"l", "lum", "luminance", "clear", "c"},
    "Ha": {"ha", "halpha", "h", "hα", "hydrogenalpha"},
    "OIII": {"oiii", "o3", "o"},
    "SII": {"sii", "s2", "s"},
}


class ColourError(ValueError):
    """A colour image that cannot be made from the stacks given, and why."""


def _canonical(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def channels_for(palette: str, filters: list[str]) -> dict[str, str]:
    """Which of ``filters`` (the stacks' filter names) serves each role the palette needs
    (``R``, ``G``, ``B``, ``Ha``… and ``L`` for LRGB); a :class:`ColourError` names what is missing."""
    if palette not in PALETTES:
        raise ColourError(f"unknown palette {palette!r} (one of {', '.join(PALETTES)})")
    roles = list(dict.fromkeys(PALETTES[palette] + (("L",) if palette == "lrgb" else ())))
    found, missing = {}, []
    for role in roles:
        match = next((f for f in filters if _canonical(f) in _ALIASES[role]), None)
        if match is None:
            missing.append(role)
        else:
            found[role] = match
    if missing:
        raise ColourError(
            f"palette {palette} needs a stack of {', '.join(missing)}; there are stacks of "
            f"{', '.join(filters) or 'no filter'}"
        )
    return found


def combine_lrgb(luminance: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """RGB (h x w x 3, linear, sky neutral) with its luminance replaced by ``luminance`` (aligned, linear)."""
    levels = background_levels([rgb[..., i] for i in range(3)])
    sky = float(np.mean(levels))
    y = rgb.mean(axis=2) - sky
    l_sky = background_levels([luminance])[0]
    lum = luminance - l_sky
    finite = np.isfinite(y) & np.isfinite(lum)
    slope, intercept = np.polyfit(
        lum[finite][:: max(1, finite.sum() // 200_000)], y[finite][:: max(1, finite.sum() // 200_000)], 1
    )
    scaled = slope * lum + intercept
    noise = float(np.mean(background_noise([rgb[..., i] for i in range(3)])))
    signal = y > 3.0 * noise
    factor = np.where(signal, scaled / np.where(signal, y, 1.0), 1.0).astype(np.float32)
    out = np.empty_like(rgb, dtype=np.float32)
    for i in range(3):
        out[..., i] = sky + (rgb[..., i] - sky) * factor
    return out


@dataclass(frozen=True)
class Composition:
    image: np.ndarray  # float32 h x w x 3, linear
    filters: dict[str, str]  # role -> filter
    sky_levels: np.ndarray  # per channel, before neutralisation
    white_balance: np.ndarray  # k per channel


def compose(
    stacks: dict[str, np.ndarray],
    palette: str,
    *,
    gradient_order: int | None = 2,
    white: WhiteBalance = "stars",
    reference: str | None = None,
) -> Composition:
    """The linear colour image of a palette from mono stacks keyed by filter name (see the module),
    on the grid of the stack ``reference`` (a filter name; by default the green channel's)."""
    roles = channels_for(palette, list(stacks))
    needed = list(dict.fromkeys(roles.values()))
    reference = reference or roles[PALETTES[palette][1]]
    aligned, _ = align_stacks({f: stacks[f] for f in needed}, reference)
    if gradient_order is not None:
        aligned = {f: remove_gradient(image, order=gradient_order)[0] for f, image in aligned.items()}
    channels = [aligned[roles[role]] for role in PALETTES[palette]]
    channels, levels = neutralise_background(channels)
    channels, factors = balance(channels, white)
    rgb = np.stack(channels, axis=2)
    if palette == "lrgb":
        rgb = combine_lrgb(aligned[roles["L"]], rgb)
    return Composition(rgb.astype(np.float32), roles, levels, factors)
