"""Master bias, dark, dark-flat and flat frames from groups of raw frames, with their provenance.

* bias, dark, dark-flat: the raw frames combined as they are (a master dark keeps its bias:
  a light with a dark of the same exposure needs nothing else; see :mod:`.apply`);
* flat: each frame has the master dark-flat (or, without one, the master bias) taken off,
  is divided by its own median so that every frame has the same level, then they are
  combined and the result divided by its mean: a master flat is 1 on average.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from .backend import Backend, BackendName
from .combine import DEFAULT_BLOCK_BYTES, CombineError, CombineSettings, combine_frames
from .fitsio import ArrayFrame, FitsFrame, FrameError, write_float32_fits
from .frames import MASTER_KINDS, FrameInfo, FrameKind, MasterInfo
from .matching import GroupError, MatchRules, check_group, setup_difference
from .provenance import Provenance

_TITLES = {
    FrameKind.BIAS: "Master Bias",
    FrameKind.DARK: "Master Dark",
    FrameKind.FLAT: "Master Flat",
    FrameKind.DARK_FLAT: "Master Dark Flat",
}


@dataclass
class MasterFrame:
    data: np.ndarray = field(repr=False)  # float32
    info: MasterInfo
    provenance: Provenance

    def header(self) -> fits.Header:
        info = self.info
        header = fits.Header()
        header["IMAGETYP"] = _TITLES[info.kind]
        header["OBSYKIND"] = (str(info.kind), "OBSY master kind")
        header["OBSYID"] = (info.master_id, "OBSY master id")
        header["INSTRUME"] = info.camera
        header["XBINNING"], header["YBINNING"] = info.binning
        for key, value in (
            ("GAIN", info.gain),
            ("OFFSET", info.offset),
            ("READMODE", info.readout_mode),
            ("CCD-TEMP", info.temperature),
            ("FILTER", info.filter),
            ("OBSYTRN", info.optical_train),
        ):
            if value is not None:
                header[key] = value
        header["EXPTIME"] = (info.exposure, "[s] mean exposure of the inputs")
        header["DATE-OBS"] = (info.time.strftime("%Y-%m-%dT%H:%M:%S"), "middle of the inputs' times (UTC)")
        header["NCOMBINE"] = info.frame_count
        return self.provenance.write_to(header)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the master as float32 FITS (atomically) and remember the path in :attr:`info`."""
        written = write_float32_fits(path, self.data, self.header())
        self.info = replace(self.info, path=written)
        return written


def build_master(
    kind: FrameKind | str,
    frames: Sequence[FrameInfo],
    settings: CombineSettings = CombineSettings(),
    *,
    bias: MasterFrame | None = None,
    dark_flat: MasterFrame | None = None,
    rules: MatchRules = MatchRules(),
    master_id: str | None = None,
    data: Sequence[np.ndarray] | None = None,
    backend: Backend | BackendName = "auto",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> MasterFrame:
    """Combine one group of raw frames (read from their paths, or from ``data``) into a master.

    A flat uses ``dark_flat`` or else ``bias`` to take the offset off its frames; other kinds
    ignore both. Raises :class:`GroupError` for frames that do not belong together and
    :class:`CombineError` or :class:`FrameError` for data that cannot be combined.
    """
    kind = FrameKind(kind)
    if kind not in MASTER_KINDS:
        raise GroupError(f"no master is made of {kind} frames")
    check_group(kind, frames, rules)
    sources = _sources(frames, data)
    notes: list[str] = []
    masters: dict[str, str] = {}
    subtract, scales, statistics = None, None, {}
    if kind == FrameKind.FLAT:
        under = _flat_offset(frames[0], bias, dark_flat, rules)
        if under is None:
            notes.append("no master dark-flat or bias: the flat frames keep their offset")
        else:
            subtract = under.data
            masters["darkflat" if under is dark_flat else "bias"] = _label(under.info)
        levels = [_flat_level(source, subtract) for source in sources]
        scales = [1.0 / level for level in levels]
        statistics["flat_level"] = round(float(np.mean(levels)), 3)

    combined = combine_frames(
        sources, settings, subtract=subtract, frame_scales=scales, backend=backend, block_bytes=block_bytes
    )
    result = combined.data
    if kind == FrameKind.FLAT:
        norm = float(np.mean(result[np.isfinite(result)]))
        result /= np.float32(norm)
        statistics["flat_norm"] = round(norm, 6)
    statistics["rejected_fraction"] = round(combined.rejected_fraction, 6)
    statistics["nan_pixels"] = combined.empty_pixels
    for name, count in combined.nonfinite_by_frame.items():
        notes.append(f"{name}: {count} NaN/inf pixels left out")

    inputs = tuple(str(f.path) if f.path is not None else f.name for f in frames)
    info = _master_info(kind, frames, result.shape, master_id or _default_id(kind, inputs))
    provenance = Provenance(
        product=f"master {kind}",
        inputs=inputs,
        parameters=settings.as_dict(),
        masters=masters,
        statistics=statistics,
        notes=tuple(notes),
    )
    return MasterFrame(data=result, info=info, provenance=provenance)


def load_master(info: MasterInfo, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A master's pixels as float32, checked against ``shape`` (the frames it will calibrate)."""
    if info.path is None:
        raise FrameError(f"master {info.master_id} has no file")
    frame = FitsFrame(info.path)
    if shape is not None and frame.shape != shape:
        raise FrameError(
            f"master {info.kind} {info.master_id} ({frame.name}) is {frame.shape[1]}×{frame.shape[0]}, "
            f"the frame to calibrate is {shape[1]}×{shape[0]} (columns×rows)"
        )
    return frame.read_float32()


def _sources(frames: Sequence[FrameInfo], data: Sequence[np.ndarray] | None) -> list:
    if data is not None:
        if len(data) != len(frames):
            raise CombineError(f"{len(data)} arrays for {len(frames)} frames")
        return [ArrayFrame(array, f.name) for array, f in zip(data, frames, strict=True)]
    sources = []
    for frame in frames:
        if frame.path is None:
            raise FrameError(f"{frame.name}: no file and no data")
        source = FitsFrame(frame.path)
        if frame.shape is not None and source.shape != frame.shape:
            raise FrameError(f"{source.name}: the file is {source.shape}, the repository says {frame.shape}")
        sources.append(source)
    return sources


def _flat_offset(first: FrameInfo, bias, dark_flat, rules: MatchRules) -> MasterFrame | None:
    """The master to take off flat frames: a dark-flat of their exposure, else a bias; checked to fit."""
    for master in (dark_flat, bias):
        if master is None:
            continue
        reason = setup_difference(master.info, first, rules)
        exposures_differ = abs(master.info.exposure - first.exposure) > rules.exposure_tolerance * first.exposure
        if master is dark_flat and reason is None and exposures_differ:
            reason = f"exposure {master.info.exposure:g} s where the flats have {first.exposure:g} s"
        if reason:
            raise GroupError(f"{_label(master.info)} cannot correct these flats: {reason}")
        return master
    return None


def _flat_level(source, subtract: np.ndarray | None) -> float:
    """The median of one flat frame after its offset is taken off (the frame is read whole, one at a time)."""
    if isinstance(source, FitsFrame):
        pixels = source.read_float32()
    else:
        pixels = (source.data * source.bscale + source.bzero).astype(np.float32)
    if subtract is not None:
        if subtract.shape != pixels.shape:
            raise CombineError(f"the master under the flats is {subtract.shape}, {source.name} is {pixels.shape}")
        pixels -= subtract
    finite = pixels[np.isfinite(pixels)]
    level = float(np.median(finite)) if finite.size else float("nan")
    if not level > 0:
        raise CombineError(f"{source.name}: a flat without signal (median level {level:g} after the offset)")
    return level


def _master_info(kind: FrameKind, frames: Sequence[FrameInfo], shape, master_id: str) -> MasterInfo:
    first = frames[0]
    times = sorted(f.time for f in frames)
    temperatures = [f.temperature for f in frames if f.temperature is not None]
    return MasterInfo(
        kind=kind,
        camera=first.camera,
        time=times[0] + (times[-1] - times[0]) / 2,
        exposure=float(np.mean([f.exposure for f in frames])),
        binning=first.binning,
        gain=first.gain,
        offset=first.offset,
        readout_mode=first.readout_mode,
        temperature=round(float(np.mean(temperatures)), 2) if temperatures else None,
        filter=first.filter if kind == FrameKind.FLAT else None,
        optical_train=first.optical_train if kind == FrameKind.FLAT else None,
        shape=tuple(shape),
        master_id=master_id,
        frame_count=len(frames),
        built=datetime.now(UTC),
    )


def _default_id(kind: FrameKind, inputs: Sequence[str]) -> str:
    digest = hashlib.sha1("\n".join(inputs).encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{kind}-{digest}"


def _label(info: MasterInfo) -> str:
    return f"{info.master_id} ({info.name})" if info.path is not None else info.master_id
