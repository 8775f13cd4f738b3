"""Where the calibration kernels run: numba on the CPU (default), NumPy, or CuPy on an NVIDIA GPU.

Chosen at run time as the allsky service does (docs/allsky.md): ``auto`` takes the GPU when
CuPy sees one, else numba, else NumPy; asking for a backend that cannot run here raises
:class:`BackendUnavailableError` with the reason.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from obsy import gpu

from . import kernels

log = logging.getLogger("obsy.imaging.calibration")

BackendName = Literal["auto", "numba", "numpy", "cupy"]


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (no numba, no CuPy, or no GPU)."""


@dataclass(frozen=True)
class Backend:
    name: str
    xp: Any  # the array module of the array twin (numpy or cupy); numba works on NumPy arrays

    @property
    def uses_numba(self) -> bool:
        return self.name == "numba"

    def to_device(self, array: np.ndarray) -> Any:
        return self.xp.asarray(array)

    def to_host(self, array: Any) -> np.ndarray:
        return array.get() if self.name == "cupy" else np.asarray(array)


def cupy_status() -> tuple[Any | None, str]:
    """CuPy if it imports and sees a GPU, with the reason when it does not."""
    return gpu.cupy_status("obsy-imaging[gpu]")


@functools.cache
def select_backend(requested: BackendName = "auto") -> Backend:
    if requested not in ("auto", "numba", "numpy", "cupy"):
        raise ValueError(f"unknown calibration backend {requested!r}; use auto, numba, numpy or cupy")
    if requested == "numpy":
        return Backend("numpy", np)
    if requested in ("auto", "cupy"):
        cupy, reason = cupy_status()
        if cupy is not None:
            return Backend("cupy", cupy)
        if requested == "cupy":
            raise BackendUnavailableError(reason)
        log.info("calibration on the CPU: %s", reason)
    if kernels.HAVE_NUMBA:
        return Backend("numba", np)
    if requested == "numba":
        raise BackendUnavailableError("numba is not installed")
    log.info("calibration with NumPy: numba is not installed")
    return Backend("numpy", np)


def warm_up(requested: BackendName = "auto") -> Backend:
    """Compile the kernels once (numba loads them from its on-disk cache after the first run).

    The service calls this at start, so the first frame of the night does not pay for the compiler.
    """
    backend = select_backend(requested)
    if backend.uses_numba:
        kernels.warm_up()
    elif backend.name == "cupy":
        values = backend.xp.ones((3, 2, 2))
        kernels.combine_block_array(
            backend.xp, values, method=kernels.SIGMA_CLIP, low=3.0, high=3.0, spread=kernels.STD, max_iterations=1
        )
    return backend
