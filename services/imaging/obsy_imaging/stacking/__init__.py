"""Stacking registered lights: normalisation, rejection, weights, in bounded memory."""

from obsy_imaging.stacking.normalise import FrameStatistics, frame_statistics, normalisation_coefficients
from obsy_imaging.stacking.rejection import Rejection, combine
from obsy_imaging.stacking.sources import array_reader, fits_reader
from obsy_imaging.stacking.stack import StackFrame, StackOptions, StackResult, stack, warm_up
from obsy_imaging.stacking.weights import frame_weights

__all__ = [
    "FrameStatistics",
    "Rejection",
    "StackFrame",
    "StackOptions",
    "StackResult",
    "array_reader",
    "combine",
    "fits_reader",
    "frame_statistics",
    "frame_weights",
    "normalisation_coefficients",
    "stack",
    "warm_up",
]
