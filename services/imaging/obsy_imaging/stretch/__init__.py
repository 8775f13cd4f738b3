"""Stretching linear stacks for people to look at: the screen-transfer-function autostretch
(mono and colour) and the arcsinh stretch; JPEG previews."""

from obsy_imaging.stretch.arcsinh import arcsinh_stretch, black_point
from obsy_imaging.stretch.jpeg import encode_jpeg, shrink
from obsy_imaging.stretch.stf import (
    StretchParameters,
    apply_stretch,
    autostretch,
    autostretch_colour,
    midtones_transfer,
    preview_jpeg,
    stretch_parameters,
)

__all__ = [
    "StretchParameters",
    "apply_stretch",
    "arcsinh_stretch",
    "autostretch",
    "autostretch_colour",
    "black_point",
    "encode_jpeg",
    "midtones_transfer",
    "preview_jpeg",
    "shrink",
    "stretch_parameters",
]
