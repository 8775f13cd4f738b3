"""What each test costs in CPU, for tuning the suite's time (issue 14: the suite is CPU-bound on 2 cores).

With ``OBSY_TEST_CPU_REPORT=<file>`` every pytest process (each xdist worker) appends a JSON line per
test to the file: the CPU seconds of the worker itself and of the children it reaped during the test
(the services, brokers, indiservers and KStars the test started and stopped: a child's own reaped
children count too), the wall seconds, and one line per worker for its start-up and collection.
Lines are short and appended with ``O_APPEND``, so workers do not interleave them.

A server kept for a whole module or session is charged to the test that stopped it; a process that
is never reaped (a daemon: KStars, which D-Bus starts, is one) is not counted. So the main process
also writes one line for the whole machine: its busy CPU seconds over the run (from ``/proc/stat``,
every process on it), which shows how much the tests' own figures leave out and how near the run
was to using every core (it was: 89 % of 2 cores over the run, 1,550 CPU s, against 1,000 counted
for the tests). Summarise a file with::

    .venv/bin/python -m tests.support.cpu_report <file>
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "OBSY_TEST_CPU_REPORT"
COLLECTION = "<start-up and collection>"
MACHINE = "<the whole machine>"


def _cpu_seconds() -> float:
    """This process's CPU and that of its reaped children, user and system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy() -> float | None:
    """CPU seconds every core of the machine has been busy since boot (``/proc/stat``); None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


#: The machine's busy CPU seconds and the monotonic clock when the run started (the main process only).
RUN_START = pytest.StashKey[tuple[float, float]]()


def _append(record: dict[str, Any]) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps(record) + "\n")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get(REPORT_ENV) and "PYTEST_XDIST_WORKER" not in os.environ and (busy := _machine_busy()):
        session.config.stash[RUN_START] = (busy, time.monotonic())


def pytest_sessionfinish(session: pytest.Session) -> None:
    start = session.config.stash.get(RUN_START, None)
    if start is None or (busy := _machine_busy()) is None:
        return
    wall = time.monotonic() - start[1]
    record = {"test": MACHINE, "worker": _worker(), "cpu_s": round(busy - start[0], 1), "wall_s": round(wall, 1)}
    _append({**record, "cores": os.cpu_count()})


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.environ.get(REPORT_ENV):
        _append({"test": COLLECTION, "worker": _worker(), "cpu_s": round(_cpu_seconds(), 2), "wall_s": None})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    if not os.environ.get(REPORT_ENV):
        yield
        return
    cpu, wall = _cpu_seconds(), time.monotonic()
    yield
    _append(
        {
            "test": item.nodeid,
            "worker": _worker(),
            "cpu_s": round(_cpu_seconds() - cpu, 2),
            "wall_s": round(time.monotonic() - wall, 2),
        }
    )


def summarise(records: Iterable[dict[str, Any]], top: int = 40) -> str:
    """The total, the start-up and collection, the folders and the costliest tests, largest first."""
    records = list(records)
    machine = [r for r in records if r["test"] == MACHINE]
    records = [r for r in records if r["test"] != MACHINE]
    tests = [r for r in records if r["test"] != COLLECTION]
    collection = sum(r["cpu_s"] for r in records if r["test"] == COLLECTION)
    total = collection + sum(r["cpu_s"] for r in tests)
    folders: dict[str, float] = defaultdict(float)
    for record in tests:
        folders[str(Path(record["test"].split("::")[0]).parent)] += record["cpu_s"]
    lines = [
        f"{len(tests)} tests, {total:.0f} CPU s in all ({total / 2 / 60:.1f} min on 2 cores if perfectly packed)",
        f"  start-up and collection of {sum(r['test'] == COLLECTION for r in records)} processes: {collection:.0f}",
        *(
            f"the whole machine: {m['cpu_s']:.0f} CPU s busy in {m['wall_s']:.0f} s, "
            f"{m['cpu_s'] / m['wall_s'] / m['cores']:.0%} of its {m['cores']} cores "
            f"({m['cpu_s'] - total:.0f} CPU s beyond the tests': daemons such as KStars, the machine's own)"
            for m in machine[-1:]
            if m["wall_s"] and m.get("cores")
        ),
        "by folder:",
        *(f"  {cpu:7.1f}  {folder}" for folder, cpu in sorted(folders.items(), key=lambda kv: -kv[1])),
        f"the {top} costliest tests (CPU s, wall s):",
        *(
            f"  {r['cpu_s']:7.1f} {r['wall_s']:7.1f}  {r['test']}"
            for r in sorted(tests, key=lambda r: -r["cpu_s"])[:top]
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.support.cpu_report <file written under OBSY_TEST_CPU_REPORT>", file=sys.stderr)
        return 2
    try:
        lines = Path(argv[0]).read_text(encoding="utf-8").splitlines()
        print(summarise(json.loads(line) for line in lines if line.strip()))
    except (OSError, ValueError, KeyError) as error:
        print(f"cpu_report: cannot read {argv[0]}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
