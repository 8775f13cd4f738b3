"""Colour from mono filter stacks: the stacks aligned onto one grid, background gradients removed,
channels combined (RGB, LRGB, the narrowband palettes HOO and SHO), the background made neutral
grey and the stars (or the image's average) white. Stretching is :mod:`obsy_imaging.stretch`'s."""

from obsy_imaging.colour.align import align_stacks
from obsy_imaging.colour.background import BackgroundModel, fit_background, remove_gradient
from obsy_imaging.colour.combine import (
    PALETTES,
    ColourError,
    Composition,
    channels_for,
    combine_lrgb,
    compose,
    write_colour_image,
)
from obsy_imaging.colour.neutralise import background_levels, neutralise_background, white_balance

__all__ = [
    "PALETTES",
    "BackgroundModel",
    "ColourError",
    "Composition",
    "align_stacks",
    "background_levels",
    "channels_for",
    "combine_lrgb",
    "compose",
    "fit_background",
    "neutralise_background",
    "remove_gradient",
    "white_balance",
    "write_colour_image",
]
