"""The live stack: each calibrated, accepted light folded into the running stack of its night,
target and filter as it arrives (docs/imaging-stacking.md, "In the service").

For each light, oldest first:

1. its calibrated frame is read and measured (median and MAD: :func:`~obsy_imaging.stacking.frame_statistics`);
2. its stars are detected; the first light of a night/target/filter with enough stars becomes the
   stack's **reference**: the stack is on its grid. Every later light is registered onto the
   reference's stars (:func:`~obsy_imaging.registration.find_transform`) and resampled onto its grid;
3. it is normalised to the reference's level (additive with scaling, by default) and folded into
   the **running weighted mean**: per pixel ``mean += (x - mean) * w / W`` with ``W`` the weights
   summed so far where the frame has data (a dithered frame leaves NaN at its edges, which count
   for nothing). The weight ``w`` is the grade's ``(SNR / FWHM)^2`` relative to the reference's;
4. the stack (float32 FITS: the mean, and the summed weights as a second HDU ``WEIGHT``) and its
   stretched preview (JPEG) are written, and the database row counts the frame and its exposure.

A light that cannot be registered (too few stars, no matching pattern, another size, an
unreadable file) is recorded as left out with the reason and never stops the next one. A running
mean needs no rejection; the end-of-night stack with rejection is a separate job (not yet).

Memory: the two arrays of the stacks in use (two at most, kept between lights so a sequence of one
filter does not read its stack back each time; a stack is read from its file after a restart).
Files: ``stacks/live/<night>/<target>/<filter>/live.fits`` and ``live.jpg`` beside it.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from time import perf_counter

import numpy as np
from astropy.io import fits
from sqlalchemy import select

from obsy.files import atomic_replacement, write_atomic
from obsy_imaging.config import ImagingLiveStackConfig
from obsy_imaging.registration import RegistrationError, StarList, Transform, detect_stars, find_transform, warp
from obsy_imaging.registration.match import MIN_STARS
from obsy_imaging.repository.layout import folder_name
from obsy_imaging.repository.models import Calibration, Frame, Grade, LiveStack, LiveStackFrame
from obsy_imaging.repository.store import Repository
from obsy_imaging.stacking import array_reader, frame_statistics
from obsy_imaging.stretch import preview_jpeg

log = logging.getLogger("obsy.imaging.livestack")

FOLDED, LEFT_OUT = "folded", "left_out"
KEEP_IN_MEMORY = 2


@dataclass(frozen=True)
class Folded:
    """A light folded into its live stack."""

    stack: LiveStack
    frame: Frame
    weight: float
    transform: Transform
    pairs: int
    fold_s: float
    preview: bytes
    reference_path: str
    #: Seconds per step: read, measure (level and stars), register, resample (and normalise), fold, write, preview.
    timings: dict[str, float]
    #: After :meth:`LiveStacker.rebuild`: the lights folded again (``frame`` is the last one calibrated again).
    rebuilt: int = 0


@dataclass(frozen=True)
class LeftOut:
    """A light the live stack could not take, and why."""

    frame: Frame
    stack: LiveStack | None
    reason: str


@dataclass
class _Open:
    """A stack in memory: the mean (0 where no frame had data), the summed weights, the reference's stars."""

    mean: np.ndarray
    weight: np.ndarray
    stars: StarList


def live_stack_path(night: str, target: str | None, filter_name: str | None) -> PurePosixPath:
    return PurePosixPath(
        "stacks", "live", night, folder_name(target or "unknown"), folder_name(filter_name or "none"), "live.fits"
    )


def quality(grade: Grade | None) -> float | None:
    """A grade's (SNR / FWHM)^2, the stacking library's grade weight; None without the figures."""
    if grade is None or not grade.snr or not grade.fwhm_px:
        return None
    return float((grade.snr / grade.fwhm_px) ** 2)


class LiveStacker:
    def __init__(self, repository: Repository, settings: ImagingLiveStackConfig) -> None:
        self.repository = repository
        self.settings = settings
        self._open: OrderedDict[int, _Open] = OrderedDict()
        #: Checked between lights: the service sets it when it stops.
        self.cancelled: Callable[[], bool] = lambda: False

    @property
    def root(self) -> Path:
        return self.repository.root

    # --- which lights ------------------------------------------------------------------
    def pending(self, limit: int = 100, *, since_night: str | None = None) -> list[int]:
        """Calibrated lights not dealt with yet, accepted by grading (or not graded), oldest calibration first;
        with ``since_night`` (YYYY-MM-DD) only lights of that night and later."""
        with self.repository.sessions() as session:
            done = select(LiveStackFrame.frame_id)
            query = (
                select(Frame.id)
                .join(Calibration, Calibration.frame_id == Frame.id)
                .outerjoin(Grade, Grade.frame_id == Frame.id)
                .where(
                    Frame.frame_type == "light",
                    Calibration.status == "calibrated",
                    Frame.id.not_in(done),
                    (Grade.id.is_(None)) | (Grade.accepted.is_(True)),
                )
            )
            if since_night is not None:
                query = query.where(Frame.night >= since_night)
            rows = session.execute(query.order_by(Calibration.calibrated_at, Calibration.id).limit(limit)).all()
        return [frame_id for (frame_id,) in rows]

    def run(self, *, since_night: str | None = None) -> list[Folded | LeftOut]:
        """Fold every pending light; returns what was done, in order."""
        results: list[Folded | LeftOut] = []
        while not self.cancelled():
            pending = self.pending(since_night=since_night)
            if not pending:
                break
            for frame_id in pending:
                if self.cancelled():
                    break
                results.append(self.fold(frame_id))
        return results

    # --- lights calibrated again --------------------------------------------------------
    def stale(self, *, since_night: str | None = None) -> list[int]:
        """The stacks holding a light that was calibrated again (a better master) after it was folded in."""
        query = (
            select(LiveStackFrame.stack_id)
            .join(Calibration, Calibration.frame_id == LiveStackFrame.frame_id)
            .join(LiveStack, LiveStack.id == LiveStackFrame.stack_id)
            .where(LiveStackFrame.status == FOLDED, Calibration.calibrated_at > LiveStackFrame.done_at)
            .distinct()
        )
        if since_night is not None:
            query = query.where(LiveStack.night >= since_night)
        with self.repository.sessions() as session:
            return sorted(session.scalars(query))

    def rebuild(self, stack_id: int) -> Folded:
        """The stack folded again from the calibrated files of its lights as they are now.

        A running mean cannot take one light's old calibration out (its file is replaced), so every
        light is folded again with the registration and weight it has (a new flat or dark moves no
        star); the reference's level is measured again, as every light's is. Each light's ``done_at``
        becomes the time the rebuild started: a light calibrated again while it runs is stale again.
        """
        started = perf_counter()
        clock = _Clock()
        now = datetime.now(UTC)
        with self.repository.sessions() as session:
            stack = session.get(LiveStack, stack_id)
            rows = session.execute(
                select(LiveStackFrame, Calibration.path, Calibration.calibrated_at)
                .join(Calibration, Calibration.frame_id == LiveStackFrame.frame_id)
                .where(LiveStackFrame.stack_id == stack_id, LiveStackFrame.status == FOLDED)
                .order_by(LiveStackFrame.done_at, LiveStackFrame.frame_id)
            ).all()
            reference_file = session.scalar(
                select(Calibration.path).where(Calibration.frame_id == stack.reference_frame_id)
            )
            session.expunge_all()
        reference = self._read(self.root / reference_file)
        statistics = frame_statistics(array_reader(reference), reference.shape)
        stack.reference_location, stack.reference_scale = statistics.location, statistics.scale
        opened = _Open(
            np.zeros(reference.shape, np.float32), np.zeros(reference.shape, np.float32), detect_stars(reference)
        )
        del reference
        clock.lap("read")
        last = rows[-1][0]
        newest = None
        for entry, path, calibrated_at in rows:
            image = self._read(self.root / path)
            transform = Transform(np.array(entry.transform, float).reshape(2, 3))
            light = frame_statistics(array_reader(image), image.shape)
            self._fold(opened, self._on_grid(stack, image, light, transform), entry.weight)
            if (
                calibrated_at is not None
                and calibrated_at > entry.done_at
                and (newest is None or calibrated_at >= newest)
            ):
                last, newest = entry, calibrated_at
        clock.lap("fold")
        with self.repository.sessions.begin() as session:
            row = session.get(LiveStack, stack_id)
            row.reference_location, row.reference_scale = stack.reference_location, stack.reference_scale
            row.updated_at = now
            for entry, _, _ in rows:
                session.get(LiveStackFrame, entry.frame_id).done_at = now
            session.flush()
            history = self._history(session, row)
            frame = session.get(Frame, last.frame_id)
            reference_path = session.get(Frame, row.reference_frame_id).path
            session.expunge_all()
        data = np.where(opened.weight > 0, opened.mean, np.float32(np.nan))
        self._write(row, data, opened.weight, history, reference_path)
        preview = self._preview(row, data)
        clock.lap("write")
        self._remember(stack_id, opened)
        took = perf_counter() - started
        log.info(
            "live stack %s rebuilt from %d lights (calibrated again), %.2f s",
            row.path,
            len(rows),
            took,
            extra={"event": "live_stack_rebuilt"},
        )
        transform = Transform(np.array(last.transform, float).reshape(2, 3))
        return Folded(
            row, frame, last.weight, transform, last.pairs, took, preview, reference_path, clock.laps, len(rows)
        )

    def keep(self, stack_id: int) -> None:
        """A stack that could not be rebuilt keeps the earlier calibration of its lights: marked as
        up to date, so it is not read again every pass (the next light calibrated again tries anew)."""
        now = datetime.now(UTC)
        with self.repository.sessions.begin() as session:
            for entry in session.scalars(
                select(LiveStackFrame).where(LiveStackFrame.stack_id == stack_id, LiveStackFrame.status == FOLDED)
            ):
                entry.done_at = now

    # --- one light ---------------------------------------------------------------------
    def fold(self, frame_id: int) -> Folded | LeftOut:
        started = perf_counter()
        clock = _Clock()
        with self.repository.sessions() as session:
            frame = session.get(Frame, frame_id)
            calibration = session.scalar(select(Calibration).where(Calibration.frame_id == frame_id))
            grade = session.scalar(select(Grade).where(Grade.frame_id == frame_id))
            stack = session.scalar(
                select(LiveStack)
                .where(
                    LiveStack.night == frame.night,
                    LiveStack.target.is_not_distinct_from(frame.target),
                    LiveStack.filter.is_not_distinct_from(frame.filter),
                )
                .order_by(LiveStack.id)
                .limit(1)
            )
        try:
            image = self._read(self.root / calibration.path)
            clock.lap("read")
            statistics = frame_statistics(array_reader(image), image.shape)
            if not statistics.scale > 0:
                raise RegistrationError("the frame has no spread (a constant frame)")
            stars = detect_stars(image)
            clock.lap("measure")
            if stack is None:
                if len(stars) < MIN_STARS:
                    raise RegistrationError(f"too few stars: {len(stars)} found, at least {MIN_STARS} are needed")
                return self._start(
                    frame=frame,
                    grade=grade,
                    image=image,
                    statistics=statistics,
                    stars=stars,
                    started=started,
                    clock=clock,
                )
            if image.shape != (stack.height, stack.width):
                raise RegistrationError(
                    f"the frame is {image.shape[1]}x{image.shape[0]}, the stack {stack.width}x{stack.height}"
                )
            opened = self._load(stack)
            match = find_transform(opened.stars, stars, "similarity")
            clock.lap("register")
        except (RegistrationError, ValueError, OSError) as error:
            return self._leave_out(frame, stack, str(error) or type(error).__name__)
        return self._add(
            stack,
            opened,
            frame=frame,
            grade=grade,
            image=image,
            statistics=statistics,
            transform=match.transform,
            pairs=match.pairs,
            started=started,
            clock=clock,
        )

    def _start(self, *, frame, grade, image, statistics, stars, started, clock) -> Folded:
        """A new stack: this light is its reference."""
        relative = live_stack_path(frame.night, frame.target, frame.filter)
        now = datetime.now(UTC)
        with self.repository.sessions.begin() as session:
            taken = set(session.scalars(select(LiveStack.path).where(LiveStack.path.like(f"{relative.parent}/%"))))
            number = 1
            while relative.as_posix() in taken:  # 'M 42' and 'M_42' share a folder name
                number += 1
                relative = relative.with_name(f"live-{number}.fits")
            stack = LiveStack(
                night=frame.night,
                target=frame.target,
                filter=frame.filter,
                reference_frame_id=frame.id,
                reference_location=statistics.location,
                reference_scale=statistics.scale,
                reference_quality=quality(grade) if self.settings.weighting == "grades" else None,
                width=image.shape[1],
                height=image.shape[0],
                path=relative.as_posix(),
                preview_path=relative.with_suffix(".jpg").as_posix(),
                frame_count=0,
                integration_s=0.0,
                left_out=0,
                created_at=now,
                updated_at=now,
            )
            session.add(stack)
        opened = _Open(np.zeros(image.shape, np.float32), np.zeros(image.shape, np.float32), stars)
        self._remember(stack.id, opened)
        log.info("live stack %s started on %s", relative, frame.path, extra={"event": "live_stack_started"})
        pairs = len(stars)
        return self._add(
            stack,
            opened,
            frame=frame,
            grade=grade,
            image=image,
            statistics=statistics,
            transform=Transform.identity(),
            pairs=pairs,
            started=started,
            clock=clock,
        )

    def _add(self, stack, opened, *, frame, grade, image, statistics, transform, pairs, started, clock) -> Folded:
        settings = self.settings
        warped = self._on_grid(stack, image, statistics, transform)
        del image
        own = quality(grade)
        weight = 1.0
        if settings.weighting == "grades" and own is not None and stack.reference_quality:
            weight = own / stack.reference_quality
        clock.lap("resample")
        self._fold(opened, warped, weight)
        del warped
        clock.lap("fold")

        exposure = frame.exposure_s or 0.0
        now = datetime.now(UTC)
        with self.repository.sessions.begin() as session:
            row = session.get(LiveStack, stack.id)
            row.frame_count += 1
            row.integration_s += exposure
            row.updated_at = now
            session.add(
                LiveStackFrame(
                    frame_id=frame.id,
                    stack_id=stack.id,
                    status=FOLDED,
                    weight=weight,
                    transform=[float(v) for v in transform.matrix.ravel()],
                    pairs=pairs,
                    exposure_s=exposure,
                    done_at=now,
                )
            )
            session.flush()
            history = self._history(session, row)
            reference = session.get(Frame, row.reference_frame_id)
            session.expunge(row)
            reference_path = reference.path
        data = np.where(opened.weight > 0, opened.mean, np.float32(np.nan))
        self._write(row, data, opened.weight, history, reference_path)
        clock.lap("write")
        preview = self._preview(row, data)
        clock.lap("preview")
        took = perf_counter() - started
        log.info(
            "folded %s into %s: %d frames, %.0f s, weight %.3f, %.2f s",
            frame.path,
            row.path,
            row.frame_count,
            row.integration_s,
            weight,
            took,
            extra={"event": "live_stack_folded"},
        )
        return Folded(row, frame, weight, transform, pairs, took, preview, reference_path, clock.laps)

    def _preview(self, stack: LiveStack, data: np.ndarray) -> bytes:
        """The stack's stretched JPEG, written beside it."""
        settings = self.settings
        preview = preview_jpeg(
            data,
            max_width=settings.preview_width,
            quality=settings.jpeg_quality,
            shadows_clip=settings.shadows_clip,
            target_background=settings.target_background,
        )
        preview_file = self.root / stack.preview_path
        preview_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(preview_file, preview)
        return preview

    def _on_grid(self, stack: LiveStack, image: np.ndarray, statistics, transform: Transform) -> np.ndarray:
        """The light resampled onto the reference's grid and normalised to its level (float32, NaN off the frame)."""
        settings = self.settings
        warped = warp(image, transform, settings.interpolation)
        gain, offset = 1.0, 0.0
        if settings.normalisation == "additive_scaling":
            gain = stack.reference_scale / statistics.scale
            offset = stack.reference_location - gain * statistics.location
        elif settings.normalisation == "additive":
            offset = stack.reference_location - statistics.location
        if gain != 1.0:
            warped *= np.float32(gain)
        if offset != 0.0:
            warped += np.float32(offset)
        return warped

    @staticmethod
    def _fold(opened: _Open, warped: np.ndarray, weight: float) -> None:
        """``mean += (x - mean) * w / W`` where the frame has data (in place; ``warped`` is used up)."""
        valid = np.isfinite(warped)
        added = valid.astype(np.float32)
        added *= np.float32(weight)
        opened.weight += added
        np.divide(added, opened.weight, out=added, where=valid)  # w / W, 0 where no data
        warped -= opened.mean
        warped *= added
        np.nan_to_num(warped, copy=False, nan=0.0)
        opened.mean += warped

    def give_up(self, frame_id: int, reason: str) -> LeftOut:
        """Leave a light out after an unexpected error (so it is not tried again and again)."""
        with self.repository.sessions() as session:
            frame = session.get(Frame, frame_id)
            entry = session.get(LiveStackFrame, frame_id)
        if entry is not None:  # the error came after its row was written: it is counted, its file comes next time
            return LeftOut(frame, None, f"{reason} (after it was counted: the stack's file is written with the next)")
        return self._leave_out(frame, None, reason)

    def _leave_out(self, frame: Frame, stack: LiveStack | None, reason: str) -> LeftOut:
        now = datetime.now(UTC)
        with self.repository.sessions.begin() as session:
            session.add(
                LiveStackFrame(
                    frame_id=frame.id,
                    stack_id=None if stack is None else stack.id,
                    status=LEFT_OUT,
                    reason=reason,
                    exposure_s=frame.exposure_s,
                    done_at=now,
                )
            )
            if stack is not None:
                row = session.get(LiveStack, stack.id)
                row.left_out += 1
                row.updated_at = now
                session.flush()
                session.expunge(row)
                stack = row
        log.warning("left %s out of the live stack: %s", frame.path, reason, extra={"event": "live_stack_left_out"})
        return LeftOut(frame, stack, reason)

    # --- files -------------------------------------------------------------------------
    @staticmethod
    def _read(path: Path) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = fits.getdata(path, memmap=False)
        if data is None or data.ndim != 2:
            raise ValueError(f"{path.name} has no 2-D image")
        return np.asarray(data, dtype=np.float32)

    def _load(self, stack: LiveStack) -> _Open:
        """The stack in memory, or read back from its file (after a restart)."""
        opened = self._open.get(stack.id)
        if opened is not None:
            self._open.move_to_end(stack.id)
            return opened
        path = self.root / stack.path
        if path.exists():
            with fits.open(path, memmap=False) as hdus:
                mean = np.asarray(hdus[0].data, dtype=np.float32)
                weight = np.asarray(hdus["WEIGHT"].data, dtype=np.float32)
                combined = int(hdus[0].header.get("NCOMBINE", 0))
        else:  # stopped after the first light's row was committed, before its file was renamed into place
            mean = np.zeros((stack.height, stack.width), np.float32)
            weight = np.zeros((stack.height, stack.width), np.float32)
            combined = 0
        mean = np.where(weight > 0, mean, np.float32(0.0))
        with self.repository.sessions() as session:
            reference = session.scalar(select(Calibration.path).where(Calibration.frame_id == stack.reference_frame_id))
        stars = detect_stars(self._read(self.root / reference))
        opened = _Open(mean, weight, stars)
        if combined < stack.frame_count:
            self._catch_up(stack, opened, combined)
        elif combined > stack.frame_count:
            log.warning("live stack %s holds %d lights, the database %d", stack.path, combined, stack.frame_count)
        self._remember(stack.id, opened)
        return opened

    def _catch_up(self, stack: LiveStack, opened: _Open, combined: int) -> None:
        """Fold again the lights the database counts and the file lacks (the service stopped between
        committing a light's row and renaming the stack's file into place): their transforms and
        weights are in their rows, so the stack comes out as if nothing had happened."""
        with self.repository.sessions() as session:
            rows = session.execute(
                select(LiveStackFrame, Calibration.path)
                .join(Calibration, Calibration.frame_id == LiveStackFrame.frame_id)
                .where(LiveStackFrame.stack_id == stack.id, LiveStackFrame.status == FOLDED)
                .order_by(LiveStackFrame.done_at, LiveStackFrame.frame_id)
            ).all()
        for entry, path in rows[combined:]:
            image = self._read(self.root / path)
            statistics = frame_statistics(array_reader(image), image.shape)
            transform = Transform(np.array(entry.transform, float).reshape(2, 3))
            self._fold(opened, self._on_grid(stack, image, statistics, transform), entry.weight)
        log.warning(
            "live stack %s: %d light(s) counted but missing from its file folded again",
            stack.path,
            len(rows) - combined,
            extra={"event": "live_stack_caught_up"},
        )

    def _remember(self, stack_id: int, opened: _Open) -> None:
        self._open[stack_id] = opened
        self._open.move_to_end(stack_id)
        while len(self._open) > KEEP_IN_MEMORY:
            self._open.popitem(last=False)

    def _history(self, session, stack: LiveStack) -> list[str]:
        rows = session.execute(
            select(LiveStackFrame, Frame.path)
            .join(Frame, Frame.id == LiveStackFrame.frame_id)
            .where(LiveStackFrame.stack_id == stack.id, LiveStackFrame.status == FOLDED)
            .order_by(LiveStackFrame.done_at, LiveStackFrame.frame_id)
        ).all()
        lines = []
        for entry, path in rows:
            t = Transform(np.array(entry.transform, float).reshape(2, 3))
            dx, dy = t.shift
            lines.append(
                f"frame {path} weight {entry.weight:.4f} exp {entry.exposure_s or 0:g}s "
                f"dx {dx:.2f} dy {dy:.2f} rot {t.rotation_deg:.3f} pairs {entry.pairs}"
            )
        return lines

    def _write(
        self, stack: LiveStack, data: np.ndarray, weight: np.ndarray, history: list[str], reference: str
    ) -> None:
        s = self.settings
        header = fits.Header()
        header["IMAGETYP"] = ("Live Stack", "running weighted mean of registered lights")
        if stack.target:
            header["OBJECT"] = stack.target
        if stack.filter:
            header["FILTER"] = stack.filter
        header["NIGHT"] = (stack.night, "observing night (evening date)")
        header["NCOMBINE"] = (stack.frame_count, "lights folded in")
        header["LIVETIME"] = (stack.integration_s, "[s] total integration")
        header["STACKREF"] = reference[-68:]  # the reference light, whose grid the stack is on
        header["STACKMTH"] = ("running weighted mean", "no rejection (live)")
        header["NORMMETH"] = (s.normalisation, "to the reference's median and MAD")
        header["WEIGHTS"] = (s.weighting, "(SNR/FWHM)^2 relative to the reference")
        header["INTERP"] = (s.interpolation, "resampling onto the reference")
        header["DATE"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        header.add_history("OBSY live stack (obsy-imaging): each light registered onto the reference")
        for line in history:
            header.add_history(line)
        primary = fits.PrimaryHDU(data.astype(np.float32, copy=False), header=header)
        weights = fits.ImageHDU(weight, name="WEIGHT")
        weights.header["COMMENT"] = "summed frame weights per pixel (0: no frame had data there)"
        target = self.root / stack.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_replacement(target) as temporary:
            fits.HDUList([primary, weights]).writeto(temporary, overwrite=True)


class _Clock:
    """Seconds between laps, by name (the database's share goes to the step after it)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = perf_counter()

    def lap(self, name: str) -> None:
        now = perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now
