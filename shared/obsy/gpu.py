"""CuPy where it imports and sees a GPU: the one check of the services that can compute on one."""

from __future__ import annotations

from typing import Any


def cupy_status(install: str) -> tuple[Any | None, str]:
    """CuPy if it imports and sees a GPU, with the reason when it does not (``install``: the
    package and extra that bring CuPy, e.g. ``obsy-allsky[gpu]``, named when it is missing)."""
    try:
        import cupy
    except ImportError as exc:
        return None, f"cupy is not installed ({exc}); install {install}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError without a driver, among others
        return None, f"cupy finds no usable GPU ({exc})"
    if count < 1:
        return None, "cupy finds no GPU"
    return cupy, "ok"
