"""Ingest of single files: the repository's layout and deduplication, and every kind of bad input.

Real files on disk and real databases (SQLite and Postgres); each bad input ends in the quarantine with its
reason, the original untouched.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from obsy.config import SiteConfig
from obsy_imaging.ingest.ingestor import Ingestor, Outcome
from obsy_imaging.repository import database, placement
from obsy_imaging.repository.models import Frame, QuarantinedFile
from obsy_imaging.repository.store import Repository
from tests.support.imaging_frames import frame_bytes, write_frame
from tests.support.pgcluster import fresh_database

SITE = SiteConfig(latitude=-33.93, longitude=18.42, elevation=30, timezone="Africa/Johannesburg")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite (the default) and Postgres (compose): the repository must behave the same on both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'imaging.sqlite3'}"
    else:
        with fresh_database("obsy_imaging_test") as url:
            yield url


@pytest.fixture
def repository(tmp_path: Path, database_url: str) -> Iterator[Repository]:
    engine = database.make_engine(database_url)
    database.upgrade(engine)
    yield Repository(engine, tmp_path / "repository", tmp_path / "quarantine")
    engine.dispose()


@pytest.fixture
def ingestor(repository: Repository) -> Ingestor:
    return Ingestor(repository, SITE)


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    folder = tmp_path / "capture"
    folder.mkdir()
    return folder


def repository_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def count(repository: Repository, model) -> int:
    with repository.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- the repository -------------------------------------------------------------------------


def test_a_light_is_linked_into_night_target_filter_with_its_full_header(ingestor, repository, capture):
    source = write_frame(capture / "Light_M42_001.fits")
    before = source.read_bytes()
    result = ingestor.ingest(source, "watch", final=False)
    assert result.outcome is Outcome.REGISTERED
    frame = result.frame
    # 2026-12-06T03:33 UTC is 05:33 in Cape Town: the night of the 5th.
    assert frame.path == "lights/2026-12-05/M_42/Red/Light_M42_001.fits"
    stored = repository.root / frame.path
    assert stored.read_bytes() == before and source.read_bytes() == before  # nothing rewritten
    assert os.path.samefile(stored, source) and frame.placement == "hardlink"
    assert frame.night == "2026-12-05" and frame.frame_type == "light" and frame.program == "indi"
    assert frame.dec_deg == pytest.approx(-0.4208206)
    keys = [card[0] for card in frame.header]
    assert keys[:2] == ["SIMPLE", "BITPIX"] and "OBJCTDEC" in keys and "GAIN" in keys
    assert ["OBJCTDEC", "-0 25 14.95", "Object J2000 DEC in Degrees"] in frame.header


def test_calibration_frames_go_under_camera_type_and_settings(ingestor, capture):
    dark = ingestor.ingest(
        write_frame(capture / "d.fits", program="indi_ccd_simulator_dark", seed=1), "watch", final=False
    )
    flat = ingestor.ingest(
        write_frame(capture / "f.fits", program="nina_light", seed=2, IMAGETYP="FLAT", EXPOSURE=2.5, EXPTIME=2.5),
        "import",
        final=True,
    )
    assert dark.frame.path == "calibration/CCD_Simulator/dark/bin1x1_gain90_m10C_1s/2026-12-05/d.fits"
    assert flat.frame.path == (
        "calibration/ZWO_ASI6200MM_Pro/flat/bin1x1_gain100_offset50_High_Gain_Mode_m10C_2.5s_Ha/2024-01-14/f.fits"
    )


def test_a_known_file_is_not_read_again(ingestor, repository, capture):
    path = write_frame(capture / "k.fits")
    assert ingestor.ingest(path, "watch", final=False).outcome is Outcome.REGISTERED
    assert ingestor.ingest(path, "watch", final=False).outcome is Outcome.KNOWN
    os.utime(path)  # touched (or rewritten in place): read again, and the bytes are the same frame
    assert ingestor.ingest(path, "watch", final=False).outcome is Outcome.DUPLICATE


def test_the_same_bytes_are_registered_once_whatever_the_route(ingestor, repository, capture, tmp_path):
    first = write_frame(capture / "a.fits")
    copy = tmp_path / "archive" / "renamed.fits"
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    assert ingestor.ingest(first, "watch", final=False).outcome is Outcome.REGISTERED
    again = ingestor.ingest(copy, "import", final=True)
    assert again.outcome is Outcome.DUPLICATE and again.frame.source_path == str(first)
    assert count(repository, Frame) == 1


def test_two_routes_at_the_same_moment_register_one_frame(repository, capture, tmp_path):
    source = write_frame(capture / "race.fits")
    results = []
    # Two repositories on one database: as the service and `obsy-imaging import` would be.
    other = Repository(
        database.make_engine(repository.engine.url.render_as_string(hide_password=False)),
        repository.root,
        repository.quarantine_root,
    )
    barrier = threading.Barrier(2)

    def run(repo: Repository, route: str) -> None:
        barrier.wait()
        results.append(Ingestor(repo, SITE).ingest(source, route, final=True).outcome)

    threads = [threading.Thread(target=run, args=(r, n)) for r, n in ((repository, "watch"), (other, "import"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert Outcome.REGISTERED in results and len(results) == 2
    # The other route found the bytes (duplicate) or, if the first had committed, the path (known).
    assert {r for r in results if r is not Outcome.REGISTERED} <= {Outcome.DUPLICATE, Outcome.KNOWN}
    assert count(repository, Frame) == 1
    [stored] = repository.root.rglob("*.fits")  # the loser's link is removed
    assert stored == repository.root / repository.frame_by_hash(repository_hash(source)).path
    other.engine.dispose()


def test_a_name_taken_by_another_frame_gets_the_next_free_name(ingestor, capture):
    one = ingestor.ingest(write_frame(capture / "n1" / "Light_001.fits", seed=1), "watch", final=False)
    two = ingestor.ingest(write_frame(capture / "n2" / "Light_001.fits", seed=2), "watch", final=False)
    assert one.frame.path.endswith("/Light_001.fits")
    assert two.frame.path.endswith("/Light_001_2.fits")


def test_another_file_system_gets_a_flushed_copy(ingestor, repository, capture, monkeypatch):
    source = write_frame(capture / "x.fits")
    real_link = os.link

    def link(src, dst):
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst)

    monkeypatch.setattr(placement.os, "link", link)
    result = ingestor.ingest(source, "watch", final=False)
    stored = repository.root / result.frame.path
    assert result.frame.placement == "copy"
    assert stored.read_bytes() == source.read_bytes() and not os.path.samefile(stored, source)
    assert not list(stored.parent.glob(".*.part"))


def test_a_full_disk_loses_nothing_and_the_frame_is_taken_later(ingestor, repository, capture, monkeypatch):
    source = write_frame(capture / "full.fits")
    before = source.read_bytes()
    real_link = os.link

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(placement.os, "link", full)
    result = ingestor.ingest(source, "watch", final=False)
    assert result.outcome is Outcome.STORAGE_FULL and "no space left" in result.reason
    assert source.read_bytes() == before and count(repository, Frame) == 0
    assert count(repository, QuarantinedFile) == 0  # not bad input: it waits
    monkeypatch.setattr(placement.os, "link", real_link)
    assert ingestor.ingest(source, "watch", final=False).outcome is Outcome.REGISTERED


def test_migrations_go_down_and_up_again(repository):
    database.downgrade(repository.engine, "base")
    assert database.current_revision(repository.engine) is None
    database.upgrade(repository.engine)
    versions = Path(database.__file__).parent / "migrations" / "versions"
    newest = max(path.name.split("_")[0] for path in versions.glob("0*.py"))
    assert database.current_revision(repository.engine) == newest  # every migration, in order


def test_models_and_migrations_agree(repository):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from obsy_imaging.repository.models import VERSION_TABLE, Base

    with repository.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


# --- bad input: a reason, a quarantine, the original untouched --------------------------------


def quarantined(result, repository: Repository, problem: str) -> str:
    assert result.outcome is Outcome.QUARANTINED, result
    assert result.problem == problem
    record = result.quarantined
    assert record.problem == problem and record.reason == result.reason
    aside = repository.quarantine_root / record.quarantined_path
    assert aside.read_bytes() == result.path.read_bytes()
    assert f"{problem}: {record.reason}" in aside.with_name(aside.name + ".reason.txt").read_text()
    return result.reason


def test_truncated_fits(ingestor, repository, capture):
    whole = frame_bytes()
    path = capture / "truncated.fits"
    path.write_bytes(whole[: len(whole) - 3000])
    waiting = ingestor.ingest(path, "watch", final=False)
    assert waiting.outcome is Outcome.WAITING and waiting.problem == "truncated"  # may still be written
    reason = quarantined(ingestor.ingest(path, "watch", final=True), repository, "truncated")
    assert f"stops at byte {len(whole) - 3000}" in reason


def test_a_file_still_being_written_waits(ingestor, repository, capture):
    path = capture / "growing.fits"
    path.write_bytes(frame_bytes()[:1000])  # not even the whole header yet
    result = ingestor.ingest(path, "watch", final=False)
    assert result.outcome is Outcome.WAITING and result.problem == "incomplete"
    assert "no END card" in result.reason
    path.write_bytes(frame_bytes())
    assert ingestor.ingest(path, "watch", final=False).outcome is Outcome.REGISTERED
    assert count(repository, QuarantinedFile) == 0


def test_corrupt_header(ingestor, repository, capture):
    path = capture / "corrupt.fits"
    data = bytearray(frame_bytes())
    data[80 : 80 + 30] = b"BITPIX  = 'sixteen'           "  # a string where a number must be
    path.write_bytes(bytes(data))
    assert "cannot be read" in quarantined(ingestor.ingest(path, "watch", final=False), repository, "corrupt")


def test_not_fits_at_all(ingestor, repository, capture):
    path = capture / "snapshot.fits"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4000))
    assert "not a FITS file" in quarantined(ingestor.ingest(path, "watch", final=False), repository, "not_fits")


def test_missing_keys(ingestor, repository, capture):
    path = write_frame(capture / "nokeys.fits", IMAGETYP=None, FRAME=None, DATE_OBS=None)
    reason = quarantined(ingestor.ingest(path, "watch", final=False), repository, "missing_keys")
    assert "IMAGETYP" in reason and "DATE-OBS" in reason


def test_nan_and_inf_pixels(ingestor, repository, capture):
    data = np.full((48, 64), 100.0, dtype=np.float32)
    data[3, 4] = np.nan
    data[5, 6] = np.inf
    path = write_frame(capture / "nan.fits", data=data)
    reason = quarantined(ingestor.ingest(path, "watch", final=False), repository, "non_finite")
    assert reason == "1 NaN and 1 infinite pixels"


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_unexpected_bitpix(ingestor, repository, capture, dtype):
    path = write_frame(capture / "wide.fits", data=np.ones((48, 64), dtype=dtype))
    reason = quarantined(ingestor.ingest(path, "watch", final=False), repository, "unexpected_bitpix")
    assert reason.startswith(f"BITPIX {-64 if dtype is np.float64 else 64} is not a raw camera frame")


def test_float32_frames_without_nan_are_taken(ingestor, capture):
    path = write_frame(capture / "float.fits", data=np.full((48, 64), 12.5, dtype=np.float32))
    assert ingestor.ingest(path, "watch", final=False).outcome is Outcome.REGISTERED


def test_compressed_fits_is_read(ingestor, repository, capture):
    path = write_frame(capture / "Light_007.fits.fz", compressed=True, seed=7)
    result = ingestor.ingest(path, "watch", final=False)
    assert result.outcome is Outcome.REGISTERED
    assert result.frame.compressed and result.frame.bitpix == 16 and result.frame.target == "M 42"
    assert (repository.root / result.frame.path).read_bytes() == path.read_bytes()  # kept compressed


def test_truncated_compressed_fits(ingestor, repository, capture):
    path = write_frame(
        capture / "cut.fits.fz", compressed=True, data=np.arange(512 * 640, dtype=np.uint16).reshape(512, 640)
    )
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 4000])
    assert "truncated" in quarantined(ingestor.ingest(path, "import", final=True), repository, "truncated")


def test_xisf_is_refused_by_name(ingestor, repository, capture):
    path = capture / "Light_M42_300s.xisf"
    path.write_bytes(b"XISF0100" + bytes(200))
    reason = quarantined(ingestor.ingest(path, "watch", final=False), repository, "xisf")
    assert "XISF" in reason and "FITS" in reason


def test_the_same_bad_file_is_quarantined_once(ingestor, repository, capture):
    path = capture / "bad.fits"
    path.write_bytes(b"garbage" * 500)
    assert ingestor.ingest(path, "watch", final=False).outcome is Outcome.QUARANTINED
    assert ingestor.ingest(path, "import", final=True).outcome is Outcome.KNOWN  # not read again
    assert count(repository, QuarantinedFile) == 1
