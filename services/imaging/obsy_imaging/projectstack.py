"""The project stack: a target's accepted, calibrated lights of every night, one filter, in one stack.

A night stack is on the grid of its night's first light; nights differ by their pointing (a
target framed again, a meridian flip, another rotation), so the project stack registers every
light onto one reference of its own: the reference of the previous project stack of that target
and filter while it is still among the lights (its lights' registrations are then kept and only
the new ones matched), otherwise the light with the best grade ((SNR / FWHM)², as the live
stack weighs them). A light the live stack folded is registered through its night (its stored
transform onto the night's first light, composed with that light's onto the project's reference:
one star match a night); the others one by one. Registration holds one light in memory at a time
(and the reference's star list); the stack itself is the stacking library's, in bands of rows
within ``memory_budget_mb``, reading each band from the calibrated files. So 200 lights of 26 MP
stay within about 1 GB (measured: 0.67 GB at the peak, under a 4 GB limit;
``bench/bench_imaging_project_pi.py``).

Progress goes to ``progress(phase, done, total)``: ``registering`` (lights) then ``stacking`` (rows).
The result goes to ``stacks/project/<target>/<filter>/stack.fits`` (with ``REJECTED`` and
``COVERAGE`` maps), a full-size stretched sample ``stack.jpg`` and a thumbnail ``stack.thumb.jpg``
beside it, and a row in ``imaging_project_stacks`` (one per target and filter, replaced by each
build) with a row per light in ``imaging_project_stack_frames``.

Colour (:meth:`ProjectStacker.colour`): the project stacks of a target's filters combined by
:mod:`obsy_imaging.colour` (aligned, gradients removed, RGB/LRGB/HOO/SHO, neutralised), written to
``stacks/project/<target>/colour/<palette>.fits`` with a stretched sample and thumbnail.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from time import perf_counter

import numpy as np
from astropy.io import fits
from sqlalchemy import delete, select

from obsy.files import atomic_replacement
from obsy_imaging.colour import PALETTES, ColourError, channels_for, write_colour_image
from obsy_imaging.colour.neutralise import WhiteBalance
from obsy_imaging.config import ImagingProjectStackConfig
from obsy_imaging.livestack import quality
from obsy_imaging.registration import RegistrationError, Transform, detect_stars, find_transform
from obsy_imaging.repository.layout import folder_name
from obsy_imaging.repository.models import (
    Calibration,
    Frame,
    Grade,
    LiveStack,
    LiveStackFrame,
    ProjectStack,
    ProjectStackFrame,
)
from obsy_imaging.repository.store import Repository
from obsy_imaging.stacking import Rejection, StackFrame, StackOptions, fits_reader, stack
from obsy_imaging.stretch.samples import sample_path, thumbnail_path, write_samples

log = logging.getLogger(__name__)

STACKED, LEFT_OUT = "stacked", "left_out"
REGISTERING, STACKING = "registering", "stacking"
MIN_STARS = 6  # as registration's matching needs

#: progress(phase, done, total): ``registering`` lights, then ``stacking`` rows.
Progress = Callable[[str, int, int], None]


@dataclass
class ProjectBuilt:
    """A project stack written: its row and the lights left out (with why)."""

    row: ProjectStack
    left_out: list[str] = field(default_factory=list)

    @property
    def sample(self) -> str:
        return str(sample_path(PurePosixPath(self.row.path)))

    @property
    def thumbnail(self) -> str:
        return str(thumbnail_path(PurePosixPath(self.row.path)))


@dataclass
class ProjectSkipped:
    """A project stack not built, and why."""

    target: str
    filter: str | None
    reason: str
    left_out: list[str] = field(default_factory=list)


@dataclass
class ColourBuilt:
    """A colour image written: its linear FITS (the JPEGs beside it) and which filter fed which role."""

    target: str
    palette: str
    path: str
    filters: dict[str, str]
    white_balance: list[float]

    @property
    def sample(self) -> str:
        return str(sample_path(PurePosixPath(self.path)))

    @property
    def thumbnail(self) -> str:
        return str(thumbnail_path(PurePosixPath(self.path)))


@dataclass
class _Light:
    frame_id: int
    path: str  # the raw light, for the names and the header
    calibrated: str  # relative to the repository root
    night: str
    exposure_s: float
    quality: float | None


class _CancelledError(Exception):
    """The service is stopping: the stack is given up, nothing is written."""


class ProjectStacker:
    """Builds the project stack of a target and filter from the repository's lights of every night."""

    def __init__(self, repository: Repository, settings: ImagingProjectStackConfig) -> None:
        self.repository = repository
        self.settings = settings
        self.root = repository.root
        #: Asked between lights and between bands of rows; True stops the build (the service is stopping).
        self.cancelled: Callable[[], bool] = lambda: False

    # --- what there is to stack ------------------------------------------------------------
    def filters(self, target: str) -> list[str | None]:
        """The filters of a target's accepted, calibrated lights (None: lights without a filter)."""
        query = self._lights_query(target).with_only_columns(Frame.filter).distinct()
        with self.repository.sessions() as session:
            found = list(session.scalars(query))
        return sorted(found, key=lambda f: (f is None, f or ""))

    def lights(self, target: str, filter_name: str | None) -> list[_Light]:
        query = self._lights_query(target).where(
            Frame.filter.is_(None) if filter_name is None else Frame.filter == filter_name
        )
        with self.repository.sessions() as session:
            rows = session.execute(query.order_by(Frame.night, Frame.date_obs, Frame.id)).all()
        return [
            _Light(frame.id, frame.path, calibrated, frame.night or "", frame.exposure_s or 0.0, quality(grade))
            for frame, calibrated, grade in rows
        ]

    @staticmethod
    def _lights_query(target: str):
        return (
            select(Frame, Calibration.path, Grade)
            .join(Calibration, Calibration.frame_id == Frame.id)
            .outerjoin(Grade, Grade.frame_id == Frame.id)
            .where(
                Frame.frame_type == "light",
                Frame.target == target,
                Calibration.status == "calibrated",
                Calibration.path.is_not(None),
                (Grade.id.is_(None)) | (Grade.accepted.is_(True)),
            )
        )

    # --- the build ---------------------------------------------------------------------------
    def build(
        self, target: str, filter_name: str | None, progress: Progress | None = None
    ) -> ProjectBuilt | ProjectSkipped:
        """Register and stack every accepted, calibrated light of ``target`` in ``filter_name``."""
        started = perf_counter()
        report = progress or (lambda _phase, _done, _total: None)
        lights = self.lights(target, filter_name)
        need = self.settings.min_frames
        if len(lights) < need:
            return ProjectSkipped(
                target, filter_name, f"{len(lights)} accepted, calibrated light(s), at least {need} are needed"
            )
        previous = self._previous(target, filter_name)
        try:
            reference, registered, left_out = self._register(lights, previous, report)
        except _CancelledError:
            return ProjectSkipped(target, filter_name, "stopped before it was done")
        frames, readable = [], []
        for light, transform, pairs in registered:  # a kept registration's file may be gone since
            try:
                read, shape = fits_reader(self.root / light.calibrated)
            except (OSError, ValueError, KeyError) as exc:
                left_out.append((light, f"cannot be read: {exc}"))
                continue
            frames.append(StackFrame(name=light.path, read=read, shape=shape, transform=transform))
            readable.append((light, transform, pairs))
        registered = readable
        reasons = [f"{light.path}: {reason}" for light, reason in left_out]
        if reference is None or len(registered) < need or reference not in [r[0] for r in registered]:
            reason = f"{len(registered)} light(s) registered, at least {need} are needed"
            if reasons:
                reason += f" ({len(reasons)} left out, e.g. {reasons[0]})"
            return ProjectSkipped(target, filter_name, reason, reasons)
        index = next(i for i, (light, _t, _p) in enumerate(registered) if light.frame_id == reference.frame_id)
        s = self.settings
        options = StackOptions(rejection=Rejection(s.rejection, s.low, s.high), memory_budget_mb=s.memory_budget_mb)

        def rows_done(done: int, total: int) -> None:
            if self.cancelled():
                raise _CancelledError
            report(STACKING, done, total)

        report(STACKING, 0, frames[index].shape[0])
        try:
            result = stack(frames, options, reference=index, progress=rows_done)
        except _CancelledError:
            return ProjectSkipped(target, filter_name, "stopped before it was done")
        values = float(np.sum(result.coverage, dtype=np.int64))
        rejected_fraction = float(np.sum(result.rejected, dtype=np.int64)) / values if values else 0.0
        relative = self._path(previous, target, filter_name)
        nights = sorted({light.night for light, _t, _p in registered})
        integration = sum(light.exposure_s for light, _t, _p in registered)
        self._write(relative, result, target, filter_name, nights, integration, rejected_fraction, reference)
        row = self._record(
            previous,
            target=target,
            filter_name=filter_name,
            relative=relative,
            reference=reference,
            registered=registered,
            left_out=left_out,
            nights=nights,
            integration=integration,
            rejected=rejected_fraction,
            took=perf_counter() - started,
        )
        log.info(
            "project stack %s: %d lights of %d nights, %d left out, %.1f s",
            relative, len(registered), len(nights), len(left_out), row.seconds,
            extra={"event": "project_stack_built"},
        )  # fmt: skip
        return ProjectBuilt(row, reasons)

    def _register(
        self, lights: list[_Light], previous: ProjectStack | None, report: Progress
    ) -> tuple[_Light | None, list[tuple[_Light, Transform, int]], list[tuple[_Light, str]]]:
        """The reference, the lights registered onto it (transform, star pairs), the lights left out."""
        reference, reference_stars, shape, left_out = self._reference(lights, previous)
        if reference is None:
            return None, [], left_out
        known: dict[int, ProjectStackFrame] = {}
        if previous is not None and reference.frame_id == previous.reference_frame_id:
            known = {entry.frame_id: entry for entry in self._entries(previous.id) if entry.status == STACKED}
        via_night = self._night_registrations(reference, reference_stars, shape, lights)
        skip = {light.frame_id for light, _reason in left_out}
        registered: list[tuple[_Light, Transform, int]] = []
        todo = [light for light in lights if light.frame_id not in skip]
        for done, light in enumerate(todo, start=1):
            if self.cancelled():
                raise _CancelledError
            if light.frame_id == reference.frame_id:
                registered.append((light, Transform.identity(), len(reference_stars)))
            elif light.frame_id in known and known[light.frame_id].transform is not None:
                entry = known[light.frame_id]
                matrix = np.asarray(entry.transform, dtype=float).reshape(2, 3)
                registered.append((light, Transform(matrix), entry.pairs or 0))
            else:
                outcome = via_night(light) or self._match(light, reference_stars, shape)
                if isinstance(outcome, str):
                    left_out.append((light, outcome))
                else:
                    registered.append((light, *outcome))
            report(REGISTERING, done, len(todo))
        return reference, registered, left_out

    def _night_registrations(self, reference: _Light, reference_stars, shape, lights: list[_Light]):
        """``via_night(light)``: the light's transform onto the project's reference through its night's
        live stack (its stored registration onto the night's reference, then that reference's onto the
        project's: one star match a night, not one a light), with the night match's star pairs; None
        where the light has no live registration or its night's reference cannot be matched."""
        by_id = {light.frame_id: light for light in lights}
        with self.repository.sessions() as session:
            rows = session.execute(
                select(LiveStackFrame.frame_id, LiveStackFrame.transform, LiveStack.reference_frame_id)
                .join(LiveStack, LiveStack.id == LiveStackFrame.stack_id)
                .where(LiveStackFrame.status == "folded", LiveStackFrame.frame_id.in_(list(by_id)))
            ).all()
        live = {frame_id: (matrix, night_reference) for frame_id, matrix, night_reference in rows if matrix}
        nights: dict[int, tuple[Transform, int] | None] = {reference.frame_id: (Transform.identity(), 0)}

        def via_night(light: _Light) -> tuple[Transform, int] | None:
            if light.frame_id not in live:
                return None
            matrix, night_reference = live[light.frame_id]
            if night_reference not in nights:
                found = by_id.get(night_reference)
                outcome = None if found is None else self._match(found, reference_stars, shape)
                nights[night_reference] = None if outcome is None or isinstance(outcome, str) else outcome
            onto_project = nights[night_reference]
            if onto_project is None:
                return None
            onto_night = Transform(np.asarray(matrix, dtype=float).reshape(2, 3))
            return onto_night.compose(onto_project[0]), onto_project[1]

        return via_night

    def _reference(self, lights: list[_Light], previous: ProjectStack | None):
        """The reference light, its stars and shape, and the candidates that could not be it (why):
        the previous stack's reference while it is among the lights (its registrations stay valid),
        else the best graded light with stars and a readable file."""
        ranked = sorted(lights, key=lambda light: -(light.quality if light.quality is not None else -1.0))
        if previous is not None:
            ranked.sort(key=lambda light: light.frame_id != previous.reference_frame_id)  # stable: it goes first
        left_out: list[tuple[_Light, str]] = []
        for candidate in ranked:
            try:
                image = self._read(candidate)
                stars = detect_stars(image)
            except (OSError, ValueError) as exc:
                left_out.append((candidate, str(exc)))
                continue
            if len(stars) >= MIN_STARS:
                return candidate, stars, image.shape, left_out
            left_out.append((candidate, f"too few stars: {len(stars)} found, at least {MIN_STARS} are needed"))
        return None, None, None, left_out

    def _match(self, light: _Light, reference_stars, shape) -> tuple[Transform, int] | str:
        """The light's transform onto the reference and its star pairs, or why it cannot be had."""
        try:
            image = self._read(light)
        except (OSError, ValueError) as exc:
            return str(exc)
        if image.shape != shape:
            return f"{image.shape[1]}x{image.shape[0]}, the reference {shape[1]}x{shape[0]}"
        try:
            match = find_transform(reference_stars, detect_stars(image))
        except RegistrationError as exc:
            return str(exc)
        return match.transform, match.pairs

    def _read(self, light: _Light) -> np.ndarray:
        path = self.root / light.calibrated
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = fits.getdata(path, memmap=False)
        if data is None or data.ndim != 2:
            raise ValueError(f"{path.name} has no 2-D image")
        return np.asarray(data, dtype=np.float32)

    # --- colour --------------------------------------------------------------------------------
    def palettes(self, target: str) -> list[str]:
        """The palettes the target's project stacks have every filter for."""
        filters = [f for f in self._stacks(target) if f is not None]
        found = []
        for palette in PALETTES:
            try:
                channels_for(palette, filters)
            except ColourError:
                continue
            found.append(palette)
        return found

    def colour(
        self,
        target: str,
        palette: str,
        *,
        white: WhiteBalance = "stars",
        gradient_order: int | None = 2,
        stretch: str = "stf",
    ) -> ColourBuilt:
        """The colour image of ``palette`` from the target's project stacks, written beside them:
        ``stacks/project/<target>/colour/<palette>.fits`` (linear, float32, three planes red, green,
        blue) with a stretched sample ``<palette>.jpg`` and thumbnail ``<palette>.thumb.jpg``.
        A :class:`ColourError` names what is missing (a filter's stack, stars to align on)."""
        stacks = self._stacks(target)
        roles = channels_for(palette, [f for f in stacks if f is not None])
        sources = {f: fits_reader(self.root / stacks[f].path) for f in dict.fromkeys(roles.values())}
        green = PurePosixPath(stacks[roles[PALETTES[palette][1]]].path)  # .../<target>/<filter>/stack[-2].fits
        relative = green.parent.parent / "colour" / f"{palette}{green.stem.removeprefix('stack')}.fits"
        header = fits.Header()
        header["OBJECT"] = target
        header["PALETTE"] = (palette, "planes: red, green, blue")
        for role, filter_name in roles.items():
            header.add_history(f"{role}: the project stack of filter {filter_name}"[:70])
        header["GRADIENT"] = ("none" if gradient_order is None else f"polynomial order {gradient_order}", "removed")
        target_path = self.root / relative
        target_path.parent.mkdir(parents=True, exist_ok=True)
        s = self.settings
        try:
            made = write_colour_image(
                sources, palette, target_path, header, gradient_order=gradient_order, white=white, stretch=stretch,
                scratch=target_path.parent, thumbnail_width=s.thumbnail_width, quality=s.jpeg_quality,
            )  # fmt: skip
        except ValueError as exc:  # alignment, too few stars to balance on, too little sky
            raise ColourError(f"{target}, {palette}: {exc}") from exc
        made.close()
        return ColourBuilt(target, palette, str(relative), roles, made.white_balance.tolist())

    def _stacks(self, target: str) -> dict[str | None, ProjectStack]:
        with self.repository.sessions() as session:
            rows = list(session.scalars(select(ProjectStack).where(ProjectStack.target == target)))
            session.expunge_all()
        return {row.filter: row for row in rows}

    # --- files and rows --------------------------------------------------------------------
    def _previous(self, target: str, filter_name: str | None) -> ProjectStack | None:
        query = select(ProjectStack).where(
            ProjectStack.target == target,
            ProjectStack.filter.is_(None) if filter_name is None else ProjectStack.filter == filter_name,
        )
        with self.repository.sessions() as session:
            row = session.scalar(query)
            if row is not None:
                session.expunge(row)
        return row

    def _entries(self, stack_id: int) -> list[ProjectStackFrame]:
        with self.repository.sessions() as session:
            rows = list(session.scalars(select(ProjectStackFrame).where(ProjectStackFrame.stack_id == stack_id)))
            session.expunge_all()
        return rows

    def _path(self, previous: ProjectStack | None, target: str, filter_name: str | None) -> PurePosixPath:
        """``stacks/project/<target>/<filter>/stack.fits``; ``stack-2.fits``… when two targets share a
        folder name (``M 42`` and ``M_42``)."""
        if previous is not None:
            return PurePosixPath(previous.path)
        folder = PurePosixPath("stacks", "project", folder_name(target), folder_name(filter_name or "none"))
        with self.repository.sessions() as session:
            taken = set(session.scalars(select(ProjectStack.path).where(ProjectStack.path.like(f"{folder}/%"))))
        n = 1
        while str(candidate := folder / ("stack.fits" if n == 1 else f"stack-{n}.fits")) in taken:
            n += 1
        return candidate

    def _record(
        self,
        previous: ProjectStack | None,
        *,
        target: str,
        filter_name: str | None,
        relative: PurePosixPath,
        reference: _Light,
        registered: list[tuple[_Light, Transform, int]],
        left_out: list[tuple[_Light, str]],
        nights: list[str],
        integration: float,
        rejected: float,
        took: float,
    ) -> ProjectStack:
        with self.repository.sessions.begin() as session:
            row = session.get(ProjectStack, previous.id) if previous is not None else None
            if row is None:
                row = ProjectStack(target=target, filter=filter_name, path=str(relative))
                session.add(row)
            else:
                session.execute(delete(ProjectStackFrame).where(ProjectStackFrame.stack_id == row.id))
            row.reference_frame_id = reference.frame_id
            row.nights, row.frame_count, row.left_out = nights, len(registered), len(left_out)
            row.integration_s, row.rejection = integration, self._rejection_text()
            row.rejected_fraction, row.seconds = rejected, took
            row.created_at = datetime.now(UTC)
            session.flush()
            for light, transform, pairs in registered:
                session.add(
                    ProjectStackFrame(
                        stack_id=row.id,
                        frame_id=light.frame_id,
                        status=STACKED,
                        transform=[float(v) for v in transform.matrix.ravel()],
                        pairs=pairs,
                    )
                )
            for light, reason in left_out:
                session.add(
                    ProjectStackFrame(stack_id=row.id, frame_id=light.frame_id, status=LEFT_OUT, reason=reason[:500])
                )
            session.flush()
            session.expunge(row)
        return row

    def _rejection_text(self) -> str:
        s = self.settings
        return "none" if s.rejection == "none" else f"{s.rejection} {s.low:g}/{s.high:g}"

    def _write(  # noqa: PLR0917
        self, relative, result, target, filter_name, nights, integration, rejected_fraction, reference: _Light
    ) -> None:
        header = fits.Header()
        header["IMAGETYP"] = ("Master Light", "a stack of calibrated, registered lights")
        header["OBJECT"] = target
        if filter_name:
            header["FILTER"] = filter_name
        header["NIGHTS"] = (len(nights), "observing nights of the lights")
        header["NIGHT1"] = (nights[0], "the first")
        header["NIGHTN"] = (nights[-1], "the last")
        header["NCOMBINE"] = (len(result.names), "lights stacked")
        header["LIVETIME"] = (integration, "[s] summed exposure")
        header["REJECT"] = (self._rejection_text(), "per-pixel rejection, low/high sigmas")
        header["REJFRAC"] = (round(rejected_fraction, 6), "share of pixel values rejected")
        header["NORMMETH"] = ("additive_scaling", "to the reference light's median and MAD")
        header["WEIGHTS"] = ("noise", "inverse variance of each light's background")
        header["STACKREF"] = reference.path[-60:]  # the light whose grid the stack is on
        header.add_history("OBSY project stack (obsy-imaging): every night's accepted, calibrated lights")
        for name, weight in zip(result.names, result.weights, strict=True):
            header.add_history(f"frame {name[-60:]} w={float(weight):.4f}")
        target_path = self.root / relative
        target_path.parent.mkdir(parents=True, exist_ok=True)
        hdus = fits.HDUList(
            [
                fits.PrimaryHDU(np.asarray(result.image, dtype=np.float32), header=header),  # no copy
                fits.ImageHDU(result.rejected, name="REJECTED"),
                fits.ImageHDU(result.coverage, name="COVERAGE"),
            ]
        )
        with atomic_replacement(target_path) as temporary:
            hdus.writeto(temporary, overwrite=True)
        s = self.settings
        write_samples(target_path, result.image, thumbnail_width=s.thumbnail_width, quality=s.jpeg_quality)
