"""``obsy-local`` stops the MCP first and alone (it closes the roof before it exits), with real processes."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from pathlib import Path

from obsy.config import ObsyConfig
from obsy_local.launcher import Child, Launcher

# A service stand-in: records each SIGTERM in the journal; the "mcp" takes a while to exit
# (its closing) unless a second SIGTERM comes.
SERVICE = textwrap.dedent(
    """
    import signal, sys, time
    name, journal, closing_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    terms = []

    def note(line):
        with open(journal, "a") as f:
            f.write(line + "\\n")

    def on_term(*_):
        terms.append(time.monotonic())
        note(f"{name} SIGTERM {len(terms)}")

    signal.signal(signal.SIGTERM, on_term)
    note(f"{name} ready")
    while not terms:
        time.sleep(0.02)
    end = terms[0] + closing_s
    while time.monotonic() < end and len(terms) < 2:
        time.sleep(0.02)
    note(f"{name} exited")
    """
)


def launcher_with(tmp_path: Path, closing_s: dict[str, float]) -> tuple[Launcher, Path]:
    config = ObsyConfig(site={"latitude": 48.2, "longitude": 16.4}, data_dir=tmp_path / "data")
    launcher = Launcher(config, None)
    script, journal = tmp_path / "service.py", tmp_path / "journal"
    script.write_text(SERVICE)
    for name, seconds in closing_s.items():
        child = Child(name, [sys.executable, str(script), name, str(journal), str(seconds)], tmp_path / f"{name}.log")
        launcher._spawn(child)
        launcher.children.append(child)
    deadline = time.monotonic() + 20
    while journal_lines(journal).count("ready") < len(closing_s) and time.monotonic() < deadline:
        time.sleep(0.05)
    return launcher, journal


def journal_lines(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    return [line.split(" ", 1)[1] if line.endswith("ready") else line for line in journal.read_text().splitlines()]


def test_the_mcp_is_stopped_first_and_waited_for_before_the_others(tmp_path: Path) -> None:
    launcher, journal = launcher_with(tmp_path, {"weather": 0.0, "mcp": 1.5, "web": 0.0})
    launcher.stop()
    lines = [line for line in journal_lines(journal) if line != "ready"]
    assert lines[:2] == ["mcp SIGTERM 1", "mcp exited"], lines
    assert sorted(lines[2:]) == sorted(["weather SIGTERM 1", "weather exited", "web SIGTERM 1", "web exited"])
    assert all(child.process is not None and child.process.returncode == 0 for child in launcher.children)


def test_a_second_stop_request_is_passed_on_to_the_mcp(tmp_path: Path) -> None:
    launcher, journal = launcher_with(tmp_path, {"mcp": 60.0})
    launcher.request_stop()  # the first Ctrl-C: run() then calls stop(), which waits for the MCP
    stopping = threading.Thread(target=launcher.stop)
    stopping.start()
    deadline = time.monotonic() + 20
    while "mcp SIGTERM 1" not in journal_lines(journal) and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher.request_stop()  # the second Ctrl-C while the MCP closes
    stopping.join(30)
    assert not stopping.is_alive(), "the launcher still waits for the MCP's 60 s closing"
    # the stop's own SIGTERM, then the one passed on: the MCP exits at once
    assert journal_lines(journal) == ["ready", "mcp SIGTERM 1", "mcp SIGTERM 2", "mcp exited"]


# A launcher that starts one child (a long sleep), prints the child's pid, and waits.
LAUNCHER_THAT_GETS_KILLED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from obsy.config import ObsyConfig
    from obsy_local.launcher import Child, Launcher

    tmp = Path(sys.argv[1])
    launcher = Launcher(ObsyConfig(site={"latitude": 48.2, "longitude": 16.4}, data_dir=tmp / "data"), None)
    child = Child("sleeper", ["sleep", "120"], tmp / "sleeper.log")
    launcher._spawn(child)
    print(child.process.pid, flush=True)
    time.sleep(120)
    """
)


def test_a_killed_launcher_leaves_no_child_running(tmp_path: Path) -> None:
    """SIGKILL gives the launcher no chance to stop its children: the kernel must (parent-death signal)."""
    import os
    import subprocess

    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER_THAT_GETS_KILLED, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None
        child_pid = int(launcher.stdout.readline())
        os.kill(child_pid, 0)  # running
        launcher.kill()
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(child_pid):
            time.sleep(0.05)
        assert not _running(child_pid), "the launcher's child outlived it"
    finally:
        launcher.kill()


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
