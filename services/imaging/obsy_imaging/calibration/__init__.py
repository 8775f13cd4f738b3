"""The calibration library: masters from raw frames, masters matched to lights, lights calibrated.

What the imaging service calls (none of it touches the database; the repository fills in
:class:`FrameInfo`/:class:`MasterInfo` from the headers it stored):

* :func:`warm_up` once at start (compiles or loads the numba kernels);
* :func:`group_frames` to split raw calibration frames into groups, :func:`build_master` on a
  ready group, :meth:`MasterFrame.write`; :func:`find_bad_pixels` on a master dark;
* :func:`match_masters` for each light: a :class:`CalibrationPlan` that says which masters and
  why, or what is missing; :meth:`PreparedMasters.from_plan` then :func:`calibrate_light`.

See docs/imaging-calibration.md.
"""

from .apply import CalibratedFrame, PreparedMasters, calibrate_light, calibrate_lights
from .backend import Backend, BackendUnavailableError, select_backend, warm_up
from .badpixels import BadPixelMap, find_bad_pixels, repair_bad_pixels
from .combine import CombineError, CombineResult, CombineSettings, combine_frames
from .fitsio import ArrayFrame, FitsFrame, FrameError, write_float32_fits
from .frames import FrameInfo, FrameKind, MasterInfo
from .masters import MasterFrame, build_master, load_master
from .matching import (
    CalibrationPlan,
    FrameGroup,
    GroupError,
    MasterChoice,
    MatchRules,
    check_group,
    group_frames,
    match_masters,
)
from .provenance import Provenance

__all__ = [
    "ArrayFrame",
    "Backend",
    "BackendUnavailableError",
    "BadPixelMap",
    "CalibratedFrame",
    "CalibrationPlan",
    "CombineError",
    "CombineResult",
    "CombineSettings",
    "FitsFrame",
    "FrameError",
    "FrameGroup",
    "FrameInfo",
    "FrameKind",
    "GroupError",
    "MasterChoice",
    "MasterFrame",
    "MasterInfo",
    "MatchRules",
    "PreparedMasters",
    "Provenance",
    "build_master",
    "calibrate_light",
    "calibrate_lights",
    "check_group",
    "combine_frames",
    "find_bad_pixels",
    "group_frames",
    "load_master",
    "match_masters",
    "repair_bad_pixels",
    "select_backend",
    "warm_up",
    "write_float32_fits",
]
