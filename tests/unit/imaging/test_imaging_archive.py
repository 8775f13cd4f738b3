"""``obsy-imaging import DIR``: an archive into the repository, resumable, with progress."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from obsy.config import load_config
from obsy_imaging.ingest.archive import import_archive
from obsy_imaging.ingest.ingestor import Ingestor
from obsy_imaging.repository import database
from obsy_imaging.repository.store import Repository
from tests.support.imaging_frames import star_field, write_frame


def make_archive(folder: Path, count: int) -> None:
    for index in range(count):
        program = ("indi_ccd_simulator_light", "nina_light", "sgp_light", "maxim_light")[index % 4]
        write_frame(folder / f"night{index % 3}" / f"frame_{index:03d}.fits", program=program, seed=index)
    (folder / "night0" / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"garbage")
    (folder / "notes.txt").write_text("not a frame: ignored")


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "obsy.yaml"
    path.write_text(yaml.safe_dump({"site": {"latitude": 50.0, "longitude": 8.0}, "data_dir": str(tmp_path / "data")}))
    return path


def run_import(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A real ``obsy-imaging import`` process: the entry point, and the progress on its standard error."""
    return subprocess.run(
        [sys.executable, "-m", "obsy_imaging", "import", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def import_in_process(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command line in this process (tests/support/commands.py): without a process start each."""
    from obsy_imaging.main import main as obsy_imaging_main
    from tests.support.commands import run_command

    return run_command(obsy_imaging_main, "import", "-c", str(config), *args)


@pytest.mark.slow
def test_import_registers_an_archive_and_a_second_run_reads_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    make_archive(archive, 24)
    config = write_config(tmp_path)
    first = run_import(config, str(archive))
    assert first.returncode == 1, first.stderr  # one file was quarantined
    assert "obsy-imaging import: 25/25 files, 1 quarantined, 24 registered" in first.stdout
    assert "quarantined" in first.stderr and "broken.fits" in first.stderr  # named as it happens
    assert "25/25" in first.stderr  # the progress line
    loaded = load_config(config, env={})
    repository = loaded.imaging.repository_dir(loaded.data_dir)
    assert len(list(repository.rglob("*.fits"))) == 24

    again = import_in_process(config, "--no-progress", str(archive))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "obsy-imaging import: 25/25 files, 25 done before"
    assert again.stderr == ""


def test_an_interrupted_import_goes_on_where_it_stopped(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    make_archive(archive, 12)
    engine = database.make_engine(f"sqlite:///{tmp_path / 'imaging.sqlite3'}")
    database.upgrade(engine)
    repository = Repository(engine, tmp_path / "repository", tmp_path / "quarantine")
    ingestor = Ingestor(repository, load_config(write_config(tmp_path), env={}).site)

    def interrupt_after_five(progress, _result) -> None:
        if progress.done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_archive(ingestor, archive, [".fits"], on_progress=interrupt_after_five)
    resumed = import_archive(ingestor, archive, [".fits"])
    assert (resumed.total, resumed.skipped) == (13, 5)  # broken.fits sorts first: quarantined before
    assert resumed.outcomes == {"registered": 8}
    engine.dispose()


@pytest.mark.slow
def test_import_names_a_missing_folder(tmp_path: Path) -> None:
    result = import_in_process(write_config(tmp_path), str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "is not a folder" in result.stderr


@pytest.mark.slow
def test_import_can_grade_the_lights(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    for seed in range(4):
        write_frame(archive / f"light_{seed}.fits", program="nina_light", data=star_field(seed=seed))
    write_frame(archive / "dark.fits", program="indi_ccd_simulator_dark", seed=9)
    result = import_in_process(write_config(tmp_path), "--grade", "--no-progress", str(archive))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "obsy-imaging import: 5/5 files, 4 accepted, 5 registered"


def test_capture_folders_default_to_the_folder_ekos_is_told_to_use(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    data_dir = config.data_dir
    assert config.imaging.capture_dirs(data_dir, None) == [(data_dir / "frames").resolve()]
    assert config.imaging.capture_dirs(data_dir, tmp_path / "ekos") == [(tmp_path / "ekos").resolve()]
    config.imaging.capture_folders = [tmp_path / "nina"]
    assert config.imaging.capture_dirs(data_dir, tmp_path / "ekos") == [(tmp_path / "nina").resolve()]


def _can_mount_in_a_namespace() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_in_a_namespace(), reason="no user namespaces here to mount a small file system")
@pytest.mark.long(seconds=75)
def test_a_really_full_disk_loses_nothing_and_a_second_run_takes_the_frames(tmp_path: Path) -> None:
    """The repository on a real 256 KiB file system (tmpfs in a private mount namespace) fills up."""
    archive = tmp_path / "archive"
    for seed in range(2):
        write_frame(archive / f"big_{seed}.fits", data=star_field(seed=seed, shape=(512, 640)))  # 655 KB each
    before = {p.name: p.read_bytes() for p in archive.iterdir()}
    config = write_config(tmp_path)
    repository = tmp_path / "data" / "imaging" / "repository"
    repository.mkdir(parents=True)
    script = (
        f"mount -t tmpfs -o size=256k tmpfs {repository} && "
        f"exec {sys.executable} -m obsy_imaging import --no-progress -c {config} {archive}"
    )
    full = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert full.returncode == 1, full.stderr
    assert "the repository's disk is full" in full.stderr
    assert "1 storage_full" in full.stdout  # the import stops at the first frame that does not fit
    assert {p.name: p.read_bytes() for p in archive.iterdir()} == before  # nothing lost or changed
    assert not list(repository.rglob("*"))  # the tmpfs is gone with its namespace; nothing leaked here

    again = import_in_process(config, "--no-progress", str(archive))
    assert again.returncode == 0, again.stderr
    assert "2 registered" in again.stdout
