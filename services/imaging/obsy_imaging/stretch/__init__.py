"""Stretching linear stacks for people to look at: an automatic screen-transfer-function stretch."""

from obsy_imaging.stretch.stf import StretchParameters, autostretch, midtones_transfer, preview_jpeg, stretch_parameters

__all__ = ["StretchParameters", "autostretch", "midtones_transfer", "preview_jpeg", "stretch_parameters"]
