"""Registration of calibrated lights onto a reference frame: stars (sep), triangle matching
(astroalign's triangle method, vectorised), a least-squares similarity or affine transform, Lanczos resampling."""

from obsy_imaging.registration.match import RegistrationError, find_transform
from obsy_imaging.registration.register import Registration, register_frames
from obsy_imaging.registration.resample import warp, warp_rows
from obsy_imaging.registration.stars import StarList, detect_stars
from obsy_imaging.registration.transform import Transform

__all__ = [
    "Registration",
    "RegistrationError",
    "StarList",
    "Transform",
    "detect_stars",
    "find_transform",
    "register_frames",
    "warp",
    "warp_rows",
]
