"""The stack of record: a night's live stack stacked again, with rejection, once the night is over.

The live stack is a running weighted mean: it cannot drop a satellite trail, a cosmic ray or a
plane's lights, since it never sees a pixel's values side by side. When its night is over (by the
calendar, or as soon as the MCP says it ended: dawn, the schedule done, an ABORT), each live stack
is stacked again from the same calibrated lights, on the registrations the live stack found
(``imaging_live_stack_frames.transform``: no second star match), with the stacking library's
per-pixel rejection (:func:`obsy_imaging.stacking.stack`: bands of rows in a memory budget,
normalised to the reference light, weighted by noise). The result goes to
``stacks/night/<night>/<target>/<filter>/stack.fits`` (the image; ``REJECTED`` and ``COVERAGE``
maps as further HDUs) with its provenance in the header and a row in ``imaging_night_stacks``;
beside it a stretched full-size sample ``stack.jpg`` and a thumbnail ``stack.thumb.jpg``.

A light whose file is gone is left out with a warning; a stack with fewer than ``min_frames``
lights is not stacked again (rejection needs several values per pixel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from time import perf_counter

import numpy as np
from astropy.io import fits
from sqlalchemy import or_, select

from obsy.files import atomic_replacement
from obsy_imaging.config import ImagingNightStackConfig
from obsy_imaging.registration import Transform
from obsy_imaging.repository.layout import folder_name
from obsy_imaging.repository.models import Calibration, Frame, LiveStack, LiveStackFrame, NightStack
from obsy_imaging.repository.store import Repository
from obsy_imaging.stacking import Rejection, StackFrame, StackOptions, fits_reader, stack
from obsy_imaging.stretch.samples import write_samples

log = logging.getLogger(__name__)

FOLDED = "folded"


def night_stack_path(night: str, target: str | None, filter_name: str | None) -> PurePosixPath:
    return PurePosixPath(
        "stacks", "night", night, folder_name(target or "unknown"), folder_name(filter_name or "none"), "stack.fits"
    )


@dataclass
class Built:
    """A night stack written: its row and the lights that could not be read (left out)."""

    row: NightStack
    missing: list[str] = field(default_factory=list)


@dataclass
class Skipped:
    """A live stack not stacked again, and why."""

    live_stack_id: int
    night: str
    target: str | None
    filter: str | None
    reason: str


class NightStacker:
    """Finds the live stacks whose night is over and stacks each again with rejection."""

    def __init__(self, repository: Repository, settings: ImagingNightStackConfig) -> None:
        self.repository = repository
        self.settings = settings
        self.root = repository.root
        #: Asked between bands of rows; True stops the stack (the service is stopping).
        self.cancelled: Callable[[], bool] = lambda: False

    def due(self, tonight: str, ended: Collection[str] = ()) -> list[int]:
        """Live stacks of nights before ``tonight``, or of a night the MCP has ended (``ended``: dawn, the
        schedule finished, the operator's ABORT), not stacked again yet, grown since (a light calibrated
        late, or the night reopened) or stacked with another rejection than the configured one."""
        over = LiveStack.night < tonight
        if ended:
            over = or_(over, LiveStack.night.in_(sorted(ended)))
        with self.repository.sessions() as session:
            rows = session.execute(
                select(LiveStack.id, LiveStack.frame_count, NightStack.source_frames, NightStack.rejection)
                .outerjoin(NightStack, NightStack.live_stack_id == LiveStack.id)
                .where(over, LiveStack.frame_count >= self.settings.min_frames)
                .order_by(LiveStack.night, LiveStack.id)
            ).all()
        wanted = self._rejection_text()
        return [
            live_id
            for live_id, live_count, source_frames, rejection in rows
            if source_frames != live_count or rejection != wanted
        ]

    def matching(self, night: str, target: str | None = None, filter_name: str | None = None) -> list[int]:
        """The live stacks of ``night`` (of one target and filter, when given): for a stack on command."""
        query = select(LiveStack.id).where(LiveStack.night == night).order_by(LiveStack.id)
        if target is not None:
            query = query.where(LiveStack.target == target)
        if filter_name is not None:
            query = query.where(LiveStack.filter == filter_name)
        with self.repository.sessions() as session:
            return list(session.scalars(query))

    def build(self, live_stack_id: int) -> Built | Skipped:
        """Stack one live stack's lights again with rejection; replaces an earlier night stack of it."""
        started = perf_counter()
        live, lights = self._lights(live_stack_id)
        if live is None:
            return Skipped(live_stack_id, "", None, None, "no such live stack")
        frames, reference, integration, missing = self._stack_frames(live, lights)
        if len(frames) < self.settings.min_frames:
            reason = f"{len(frames)} light(s) to stack, at least {self.settings.min_frames} are needed"
            if missing:
                reason += f" ({len(missing)} could not be read: {missing[0]})"
            return Skipped(live.id, live.night, live.target, live.filter, reason)
        for text in missing:
            log.warning("night stack of %s leaves out %s", live.path, text, extra={"event": "night_stack_missing"})
        s = self.settings
        options = StackOptions(rejection=Rejection(s.rejection, s.low, s.high), memory_budget_mb=s.memory_budget_mb)

        def progress(_done: int, _total: int) -> None:
            if self.cancelled():
                raise _CancelledError

        try:
            result = stack(frames, options, reference=reference, progress=progress)
        except _CancelledError:
            return Skipped(live.id, live.night, live.target, live.filter, "stopped before it was done")
        relative = night_stack_path(live.night, live.target, live.filter)
        values = float(np.sum(result.coverage, dtype=np.int64))
        rejected_fraction = float(np.sum(result.rejected, dtype=np.int64)) / values if values else 0.0
        self._write(relative, result, live, integration, rejected_fraction)
        row = self._record(
            live,
            relative,
            count=len(frames),
            integration=integration,
            rejected=rejected_fraction,
            took=perf_counter() - started,
        )
        log.info(
            "night stack %s: %d lights, %.2f %% of values rejected, %.1f s",
            relative,
            len(frames),
            100 * rejected_fraction,
            row.seconds,
            extra={"event": "night_stack_built"},
        )
        return Built(row, missing)

    def _stack_frames(
        self, live: LiveStack, lights: list[tuple[Frame, str, LiveStackFrame]]
    ) -> tuple[list[StackFrame], int, float, list[str]]:
        """The lights as the stacking library takes them, the reference's index among them, the summed
        exposure, and the lights whose file cannot be read (with why)."""
        frames: list[StackFrame] = []
        missing: list[str] = []
        reference, integration = 0, 0.0
        for frame, calibrated, entry in lights:
            try:
                read, shape = fits_reader(self.root / calibrated)
            except (OSError, ValueError) as exc:
                missing.append(f"{frame.path}: {exc}")
                continue
            if frame.id == live.reference_frame_id:
                reference = len(frames)
            matrix = np.asarray(entry.transform or Transform.identity().matrix.ravel(), float).reshape(2, 3)
            frames.append(StackFrame(name=frame.path, read=read, shape=shape, transform=Transform(matrix)))
            integration += entry.exposure_s or 0.0
        return frames, reference, integration, missing

    def _record(
        self, live: LiveStack, relative: PurePosixPath, *, count: int, integration: float, rejected: float, took: float
    ) -> NightStack:
        with self.repository.sessions.begin() as session:
            row = session.scalar(select(NightStack).where(NightStack.live_stack_id == live.id))
            if row is None:
                row = NightStack(live_stack_id=live.id, path=str(relative))
                session.add(row)
            row.night, row.target, row.filter = live.night, live.target, live.filter
            row.path = str(relative)
            row.frame_count, row.integration_s, row.source_frames = count, integration, live.frame_count
            row.rejection = self._rejection_text()
            row.rejected_fraction, row.seconds = rejected, took
            row.created_at = datetime.now(UTC)
            session.flush()
            session.expunge(row)
        return row

    # --- helpers ------------------------------------------------------------------------
    def _rejection_text(self) -> str:
        s = self.settings
        return "none" if s.rejection == "none" else f"{s.rejection} {s.low:g}/{s.high:g}"

    def _lights(self, live_stack_id: int) -> tuple[LiveStack | None, list[tuple[Frame, str, LiveStackFrame]]]:
        with self.repository.sessions() as session:
            live = session.get(LiveStack, live_stack_id)
            if live is None:
                return None, []
            rows = session.execute(
                select(Frame, Calibration.path, LiveStackFrame)
                .join(LiveStackFrame, LiveStackFrame.frame_id == Frame.id)
                .join(Calibration, Calibration.frame_id == Frame.id)
                .where(LiveStackFrame.stack_id == live_stack_id, LiveStackFrame.status == FOLDED)
                .order_by(Frame.id)
            ).all()
            session.expunge_all()
        return live, [(frame, path, entry) for frame, path, entry in rows]

    def _write(
        self, relative: PurePosixPath, result, live: LiveStack, integration: float, rejected_fraction: float
    ) -> None:
        s = self.settings
        header = fits.Header()
        header["IMAGETYP"] = ("Master Light", "a stack of calibrated, registered lights")
        header["OBJECT"] = live.target or "unknown"
        if live.filter:
            header["FILTER"] = live.filter
        header["NIGHT"] = (live.night, "observing night (local date of its evening)")
        header["NCOMBINE"] = (len(result.names), "lights stacked")
        header["LIVETIME"] = (integration, "[s] summed exposure")
        header["REJECT"] = (self._rejection_text(), "per-pixel rejection, low/high sigmas")
        header["REJFRAC"] = (round(rejected_fraction, 6), "share of pixel values rejected")
        header["NORMMETH"] = ("additive_scaling", "to the reference light's median and MAD")
        header["WEIGHTS"] = ("noise", "inverse variance of each light's background")
        header.add_history("OBSY night stack (obsy-imaging): the live stack's lights, registrations and reference,")
        header.add_history(
            f"stacked again with {self._rejection_text()} rejection in a {s.memory_budget_mb:g} MB budget"
        )
        for name, weight in zip(result.names, result.weights, strict=True):
            header.add_history(f"frame {name[-60:]} w={float(weight):.4f}")
        primary = fits.PrimaryHDU(result.image.astype(np.float32), header=header)
        rejected = fits.ImageHDU(result.rejected, name="REJECTED")
        coverage = fits.ImageHDU(result.coverage, name="COVERAGE")
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_replacement(target) as temporary:
            fits.HDUList([primary, rejected, coverage]).writeto(temporary)
        write_samples(target, result.image)


class _CancelledError(Exception):
    """The service is stopping: the stack is given up between bands, nothing is written."""


def stack_file(root: Path, built: Built) -> Path:
    return root / built.row.path
