"""Calibrated lights recorded in an imaging repository as the ingest, calibration and grading leave
them, for the live stack's tests and bench (no bus, no watcher)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy_imaging.repository import database
from obsy_imaging.repository.models import Calibration, Frame, Grade
from obsy_imaging.repository.store import Repository

START = datetime(2026, 1, 15, 21, 0, tzinfo=UTC)


def make_repository(folder: Path, url: str | None = None) -> Repository:
    """The imaging tables (SQLite in ``folder`` unless ``url``) and a repository root with ``calibrated/``."""
    engine = database.make_engine(url or f"sqlite:///{folder / 'imaging.sqlite3'}")
    database.upgrade(engine)
    root = folder / "repository"
    (root / "calibrated").mkdir(parents=True, exist_ok=True)
    return Repository(engine, root, folder / "quarantine")


def write_calibrated(repository: Repository, name: str, image: np.ndarray) -> Path:
    path = repository.root / "calibrated" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(np.asarray(image, dtype=np.float32)).writeto(path, overwrite=True)
    return path


def record(
    repository: Repository,
    paths: list[Path],
    *,
    target: str = "M 42",
    filter_name: str = "L",
    night: str = "2026-01-15",
    exposure: float = 60.0,
    grades: list[tuple[float, float, bool] | None] | None = None,
) -> list[int]:
    """A frame, a calibration and (when given: SNR, FWHM px, accepted) a grade row per calibrated light."""
    ids = []
    with repository.sessions.begin() as session:
        first = session.query(Frame).count()
        for index, path in enumerate(paths):
            when = START + timedelta(seconds=65 * (first + index))
            with fits.open(path) as hdus:
                height, width = hdus[0].data.shape
            frame = Frame(
                sha256=f"{first + index:064d}",
                path=f"lights/{night}/{target}/{filter_name}/{path.name}",
                placement="copy",
                source_path=str(path),
                source_mtime_ns=0,
                size_bytes=path.stat().st_size,
                route="import",
                ingested_at=when,
                frame_type="light",
                program="test",
                night=night,
                target=target,
                filter=filter_name,
                exposure_s=exposure,
                binning_x=1,
                binning_y=1,
                date_obs=when,
                width=width,
                height=height,
                bitpix=-32,
                header=[],
            )
            session.add(frame)
            session.flush()
            session.add(
                Calibration(
                    frame_id=frame.id,
                    night=night,
                    status="calibrated",
                    path=path.relative_to(repository.root).as_posix(),
                    queued_at=when,
                    calibrated_at=when + timedelta(seconds=1),
                )
            )
            grade = None if grades is None else grades[index]
            if grade is not None:
                snr, fwhm, accepted = grade
                session.add(
                    Grade(
                        frame_id=frame.id,
                        night=night,
                        target=target,
                        filter=filter_name,
                        stars=150,
                        fwhm_px=fwhm,
                        background=0.0,
                        noise=1.0,
                        snr=snr,
                        accepted=accepted,
                        reasons=[] if accepted else ["test: rejected"],
                        graded_at=when,
                    )
                )
            ids.append(frame.id)
    return ids


def calibrate_again(
    repository: Repository, frame_id: int, image: np.ndarray, header: fits.Header | None = None
) -> None:
    """What the calibrator does to a light calibrated again with a better master: its calibrated file
    replaced atomically at the same path, the row's ``calibrated_at`` moved on and the old
    calibration put in its history."""
    import os

    with repository.sessions.begin() as session:
        row = session.query(Calibration).filter(Calibration.frame_id == frame_id).one()
        target = repository.root / row.path
        temporary = target.with_name(f".{target.name}.tmp")
        fits.PrimaryHDU(np.asarray(image, dtype=np.float32), header).writeto(temporary, overwrite=True)
        os.replace(temporary, target)
        earlier = row.calibrated_at.isoformat() if row.calibrated_at else None
        row.history = [*(row.history or []), {"masters": {}, "calibrated_at": earlier}]
        row.calibrated_at = datetime.now(UTC)
