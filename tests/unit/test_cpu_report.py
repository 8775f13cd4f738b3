"""The suite's CPU report (tests/support/cpu_report.py): what it records and how it sums it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cpu_report import COLLECTION, MACHINE, REPORT_ENV, summarise

ROOT = Path(__file__).resolve().parents[2]


def test_the_summary_sums_the_collection_the_folders_and_ranks_the_tests() -> None:
    records = [
        {"test": COLLECTION, "worker": "gw0", "cpu_s": 5.0, "wall_s": None},
        {"test": COLLECTION, "worker": "gw1", "cpu_s": 7.0, "wall_s": None},
        {"test": "tests/unit/test_a.py::test_cheap", "worker": "gw0", "cpu_s": 1.0, "wall_s": 1.5},
        {"test": "tests/integration/web/test_b.py::test_dear", "worker": "gw1", "cpu_s": 30.0, "wall_s": 40.0},
        {"test": "tests/integration/web/test_c.py::test_middle", "worker": "gw1", "cpu_s": 6.0, "wall_s": 9.0},
        {"test": MACHINE, "worker": "main", "cpu_s": 80.0, "wall_s": 50.0, "cores": 2},
    ]
    text = summarise(records, top=2)
    assert text.splitlines()[0].startswith("3 tests, 49 CPU s in all")
    assert "the whole machine: 80 CPU s busy in 50 s, 80% of its 2 cores (31 CPU s beyond the tests'" in text
    assert "start-up and collection of 2 processes: 12" in text
    assert "36.0  tests/integration/web" in text and "1.0  tests/unit" in text
    ranked = text.split("costliest tests")[1].splitlines()[1:]
    assert [line.split()[-1] for line in ranked] == [
        "tests/integration/web/test_b.py::test_dear",
        "tests/integration/web/test_c.py::test_middle",
    ]


@pytest.mark.slow  # a pytest of its own: seconds
def test_a_test_that_starts_a_child_is_charged_its_cpu(tmp_path: Path) -> None:
    """A child that spins half a second and is reaped is charged to the test that ran it, not to the next."""
    tests = tmp_path / "test_spin.py"
    tests.write_text(
        "import subprocess, sys\n"
        "def test_spins():\n"
        "    subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
        "while time.process_time() - t < 0.5: pass'], check=True)\n"
        "def test_idle():\n"
        "    pass\n"
    )
    (tmp_path / "conftest.py").write_text(
        "from tests.support.cpu_report import (  # noqa: F401\n"
        "    pytest_collection_finish, pytest_runtest_protocol, pytest_sessionfinish, pytest_sessionstart)\n"
    )
    report = tmp_path / "cpu.jsonl"
    outer = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT")  # this pytest's own, when it runs in parallel
    env = {**{k: v for k, v in os.environ.items() if k not in outer}, REPORT_ENV: str(report), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tests)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    records = {r["test"].split("::")[-1]: r for r in map(json.loads, report.read_text().splitlines())}
    assert records["test_spins"]["cpu_s"] >= 0.45, records
    assert records["test_idle"]["cpu_s"] < 0.2, records
    assert records[COLLECTION]["cpu_s"] > 0, records
    if Path("/proc/stat").exists():  # the whole machine was busy at least as long as the test that spun
        assert records[MACHINE]["cpu_s"] >= 0.45 and records[MACHINE]["cores"] == os.cpu_count(), records
