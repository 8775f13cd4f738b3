"""The array module the pipeline runs on: CuPy on an NVIDIA GPU, NumPy (with OpenCV kernels) on the CPU.

Every pipeline stage is written once against a :class:`Backend`: element-wise work goes
through ``backend.xp`` (``numpy`` or ``cupy``), and the few neighbourhood operations that
NumPy lacks (2-D correlation, separable and box filters, median, maximum and minimum
filters, image pyramids) go through the backend's methods. The CPU backend implements those with OpenCV
(fast, multi-threaded C++), the GPU backend with ``cupyx.scipy.ndimage``; both use the same
kernels and the same border rule (reflect-101: ``BORDER_REFLECT_101`` in OpenCV, ``mirror``
in SciPy/CuPy), so the two give the same numbers up to float32 rounding.

Arrays are float32, images channels-last (H, W) or (H, W, 3).
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from obsy import gpu

log = logging.getLogger("obsy.allsky.backend")

BackendName = Literal["auto", "numpy", "cupy"]

#: The 5-tap binomial kernel of Burt & Adelson's pyramid (what cv2.pyrDown/pyrUp use).
PYRAMID_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / 16.0


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (no CuPy, or no GPU)."""


@dataclass
class Backend:
    """An array module plus the neighbourhood operations the pipeline needs."""

    name: str
    xp: Any
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # --- moving data -------------------------------------------------------------
    def asarray(self, array: Any, dtype: Any = np.float32) -> Any:
        """Bring a host (NumPy) array onto this backend."""
        return self.xp.asarray(array, dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def synchronize(self) -> None:
        """Wait until queued work is done (for timing); a no-op on the CPU."""

    @property
    def parallelism(self) -> int:
        """How many items :meth:`map` works on at once."""
        return 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``[fn(item) for item in items]``; the CPU backend runs the items on its cores at once."""
        return [fn(item) for item in items]

    def in_row_blocks(self, fn: Callable[[Any], Any], image: Any) -> Any:
        """Apply an in-place, pixel-by-pixel ``fn`` to the image; the CPU backend does row blocks side by side."""
        fn(image)
        return image

    # --- neighbourhood operations (implemented per backend) ------------------------
    def correlate2d(self, image: Any, kernel: np.ndarray) -> Any:
        """2-D correlation of each channel with ``kernel`` (reflect-101 borders)."""
        raise NotImplementedError

    def sep_filter(self, image: Any, kernel: np.ndarray) -> Any:
        """The same 1-D kernel along rows and columns (reflect-101 borders)."""
        raise NotImplementedError

    def median3(self, image: Any, size: int) -> Any:
        """Median over a size×size window of each channel (size 3 or 5; replicated borders)."""
        raise NotImplementedError

    def maximum_filter(self, image: Any, size: int) -> Any:
        """Maximum over a size×size window of a single-channel image (replicated borders)."""
        raise NotImplementedError

    def box_filter(self, image: Any, size: int) -> Any:
        """Mean over a size×size window of each channel (reflect-101 borders)."""
        raise NotImplementedError

    def minimum_filter(self, image: Any, size: int) -> Any:
        """Minimum over a size×size window of a single-channel image (replicated borders)."""
        return -self.maximum_filter(-image, size)

    # --- colour and output (channel-wise work NumPy does slowly: a trailing axis of 3) ---
    def mix_channels(self, image: Any, matrix: np.ndarray, out: Any | None = None) -> Any:
        """Each pixel's channels times ``matrix`` (K×C): (H, W, C) → (H, W, K), or (H, W) when K is 1."""
        m = self.xp.asarray(matrix, dtype=self.xp.float32)
        mixed = self.xp.matmul(image, m.T)
        if m.shape[0] == 1:
            mixed = mixed[:, :, 0]
        if out is None:
            return mixed
        out[...] = mixed
        return out

    def zero_outside(self, image: Any, mask: Any) -> Any:
        """The image, black wherever the (H, W) boolean mask is false (in place, or a new array on the CPU)."""
        image *= mask[:, :, None]
        return image

    def to_uint8(self, image: Any) -> Any:
        """[0, 1] floats → rounded, saturated uint8 (same backend)."""
        xp = self.xp
        scaled = xp.clip(image, 0.0, 1.0) * np.float32(255)
        scaled += np.float32(0.5)
        return scaled.astype(xp.uint8)

    # --- pyramids, shared -----------------------------------------------------------
    def pyr_down(self, image: Any) -> Any:
        """Blur with the binomial kernel and keep every second row and column (as cv2.pyrDown)."""
        return self.sep_filter(image, PYRAMID_KERNEL)[::2, ::2]

    def pyr_up(self, image: Any, height: int, width: int) -> Any:
        """Spread onto a height×width grid of zeros and blur with twice the binomial kernel (as cv2.pyrUp)."""
        up = self.xp.zeros((height, width, *image.shape[2:]), dtype=image.dtype)
        up[::2, ::2] = image[: (height + 1) // 2, : (width + 1) // 2]
        return self.sep_filter(up, PYRAMID_KERNEL * 2)


class NumpyBackend(Backend):
    """NumPy arrays; neighbourhood operations in OpenCV."""

    def __init__(self) -> None:
        super().__init__(name="numpy", xp=np)
        _keep_freed_memory()

    @property
    def parallelism(self):
        return _cpu_threads()

    def map(self, fn, items):
        # NumPy's element-wise work is single-threaded but releases the GIL: independent
        # pieces (the exposures of a bracket) run in threads, one per core OpenCV uses.
        pool = _cpu_pool()
        if pool is None:
            return [fn(item) for item in items]
        return list(pool.map(fn, items))

    def in_row_blocks(self, fn, image):
        pool = _cpu_pool()
        if pool is None:
            fn(image)
            return image
        # Blocks of a few MB: several per thread, and each block's passes stay in the cache.
        count = max(_cpu_threads(), image.nbytes // (4 << 20))
        edges = np.linspace(0, image.shape[0], count + 1).astype(int)
        list(pool.map(lambda i: fn(image[edges[i] : edges[i + 1]]), range(count)))
        return image

    def mix_channels(self, image, matrix, out=None):
        m = np.asarray(matrix, dtype=np.float32)
        if out is None:
            return cv2.transform(image, m)
        return cv2.transform(image, m, dst=out)

    def zero_outside(self, image, mask):
        key = ("mask_u8", id(mask))
        cached = self._cache.get(key)
        if cached is None or cached[0] is not mask:
            cached = self._cache[key] = (mask, mask.astype(np.uint8))
        # A bitwise AND of the float bits with itself where the mask is set; a new image is zero elsewhere.
        return cv2.bitwise_and(image, image, mask=cached[1])

    def to_uint8(self, image):
        positive = cv2.max(image, 0.0)
        return cv2.convertScaleAbs(positive, alpha=255.0)  # rounds and saturates at 255

    def correlate2d(self, image, kernel):
        return cv2.filter2D(image, cv2.CV_32F, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)

    def sep_filter(self, image, kernel):
        k = kernel.astype(np.float32)
        return cv2.sepFilter2D(image, cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT_101)

    def median3(self, image, size):
        if size not in (3, 5):
            raise ValueError(f"median filter size must be 3 or 5, not {size}")
        return cv2.medianBlur(np.ascontiguousarray(image, dtype=np.float32), size)

    def maximum_filter(self, image, size):
        element = np.ones((size, size), np.uint8)
        return cv2.dilate(image, element, borderType=cv2.BORDER_REPLICATE)

    def minimum_filter(self, image, size):
        element = np.ones((size, size), np.uint8)
        return cv2.erode(image, element, borderType=cv2.BORDER_REPLICATE)

    def box_filter(self, image, size):
        return cv2.boxFilter(image, cv2.CV_32F, (size, size), borderType=cv2.BORDER_REFLECT_101)

    def pyr_down(self, image):
        return cv2.pyrDown(image, borderType=cv2.BORDER_REFLECT_101)

    def pyr_up(self, image, height, width):
        return cv2.pyrUp(image, dstsize=(width, height), borderType=cv2.BORDER_REFLECT_101)


class CupyBackend(Backend):
    """CuPy arrays on the current GPU; neighbourhood operations in cupyx.scipy.ndimage."""

    def __init__(self, cupy: Any) -> None:
        super().__init__(name="cupy", xp=cupy)
        from cupyx.scipy import ndimage

        self._ndi = ndimage

    def to_host(self, array):
        return self.xp.asnumpy(array)

    def synchronize(self):
        self.xp.cuda.Stream.null.synchronize()

    def _per_channel(self, image: Any, kernel2d: np.ndarray) -> Any:
        k = self.xp.asarray(kernel2d, dtype=self.xp.float32)
        if image.ndim == 3:
            k = k[:, :, None]
        return k

    def correlate2d(self, image, kernel):
        return self._ndi.correlate(image, self._per_channel(image, kernel), mode="mirror")

    def sep_filter(self, image, kernel):
        k = self.xp.asarray(kernel, dtype=self.xp.float32)
        out = self._ndi.correlate1d(image, k, axis=0, mode="mirror")
        return self._ndi.correlate1d(out, k, axis=1, mode="mirror")

    def median3(self, image, size):
        if size not in (3, 5):
            raise ValueError(f"median filter size must be 3 or 5, not {size}")
        footprint = (size, size, 1) if image.ndim == 3 else (size, size)
        return self._ndi.median_filter(image, size=footprint, mode="nearest")

    def maximum_filter(self, image, size):
        return self._ndi.maximum_filter(image, size=size, mode="nearest")

    def minimum_filter(self, image, size):
        return self._ndi.minimum_filter(image, size=size, mode="nearest")

    def box_filter(self, image, size):
        footprint = (size, size, 1) if image.ndim == 3 else (size, size)
        return self._ndi.uniform_filter(image, size=footprint, mode="mirror")


@functools.cache
def _cpu_threads() -> int:
    """Threads for the CPU backend's own work: as many as OpenCV uses (its default: the cores)."""
    return max(1, cv2.getNumThreads())


@functools.cache
def _cpu_pool() -> ThreadPoolExecutor | None:
    """One pool for every CPU backend of the process (None on a single core)."""
    threads = _cpu_threads()
    return ThreadPoolExecutor(threads, thread_name_prefix="allsky-cpu") if threads > 1 else None


def _keep_freed_memory() -> None:
    """Let glibc reuse freed image buffers instead of returning them to the system at once.

    By default every allocation above 32 MiB is a fresh ``mmap`` and every free a ``munmap``,
    so each full-size temporary (40–140 MB at 8–12 MP) pays tens of thousands of page faults:
    measured, about a third of the CPU pipeline's time. Raising the mmap and trim thresholds
    keeps those pages in the heap for the next frame. Linux/glibc only; elsewhere a no-op.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    except (OSError, AttributeError):
        pass


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def cupy_status() -> tuple[Any | None, str]:
    """CuPy if it imports and sees a GPU, with the reason when it does not."""
    return gpu.cupy_status("obsy-allsky[gpu]")


def select_backend(requested: BackendName = "auto") -> Backend:
    """The backend to run on: ``cupy`` when asked for (or ``auto`` and a GPU is there), else ``numpy``.

    Asking for ``cupy`` explicitly where it cannot run raises :class:`BackendUnavailableError`;
    ``auto`` falls back to the CPU and logs why.
    """
    if requested == "numpy":
        return NumpyBackend()
    if requested not in ("auto", "cupy"):
        raise ValueError(f"unknown backend {requested!r}; use auto, numpy or cupy")
    cupy, reason = cupy_status()
    if cupy is not None:
        return CupyBackend(cupy)
    if requested == "cupy":
        raise BackendUnavailableError(reason)
    log.info("allsky pipeline on the CPU: %s", reason, extra={"event": "backend_cpu"})
    return NumpyBackend()
