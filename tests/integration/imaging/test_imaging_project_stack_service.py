"""The project stack in the running imaging service: real broker, real SQLite, real files.

Calibrated lights of two nights with different framings wait in the repository; a command on
``<p>/imaging/projectstack/set`` has them registered onto one reference and stacked: progress
(done of total) on the retained state, the stack on ``<p>/imaging/projectstacks``, its stars'
light the simulator's truth. A malformed command and one for a target without lights are answered
or dropped without harm.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from astropy.io import fits

from obsy.messages import ImagingProjectStack, ImagingProjectStackState
from obsy_imaging.cli import stack_project_command
from tests.integration.imaging.test_imaging_calibration_service import repository_of
from tests.integration.imaging.test_imaging_live_stack_service import events
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.support.live_stack import record, write_calibrated
from tests.support.stacking import flux_over_truth, offset_pointing, render
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

COMMAND = "obsy/imaging/projectstack/set"
STATE = "obsy/imaging/projectstack/state"
BUILT = "obsy/imaging/projectstacks"
#: Two nights long ago (not stacked live), each framed otherwise: (east ", north ", angle) per light.
NIGHTS = {
    "2026-01-15": [(0.0, 0.0, 0.0), (8.0, -6.0, 0.0), (-7.0, 9.0, 0.0)],
    "2026-01-19": [(30.0, -25.0, 180.0), (24.0, -18.0, 180.0), (36.0, -30.0, 180.0)],
}


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#"])
    yield w
    w.close()


def states(watcher: Watcher) -> list[ImagingProjectStackState]:
    return [ImagingProjectStackState.model_validate_json(m.payload) for m in watcher.on(STATE)]


@pytest.mark.long(seconds=60)
def test_a_command_builds_the_project_stack_with_progress_on_the_bus(tmp_path, mosquitto, watcher, capsys) -> None:
    calibration = {"require_dark": False, "require_flat": False}
    with Running(tmp_path, mosquitto, calibration=calibration) as run:
        wait_online(watcher)
        repository = repository_of(run)
        seed, reference = 40, None
        for night, pointings in NIGHTS.items():
            frames = [
                render(offset_pointing(e, n), position_angle=pa, seed=(seed := seed + 1)) for e, n, pa in pointings
            ]
            reference = reference or frames[0]
            paths = [write_calibrated(repository, f"{night}-{i}.fits", f.image) for i, f in enumerate(frames)]
            grades = [(100.0 if (night, i) == ("2026-01-15", 0) else 80.0, 3.0, True) for i in range(len(paths))]
            record(repository, paths, night=night, grades=grades)
        repository.engine.dispose()

        watcher.publish(COMMAND, b"{not json")  # dropped, counted; the service goes on
        watcher.publish(COMMAND, json.dumps({"target": "M 31", "request_id": "none"}))
        watcher.wait_for(lambda _: any(s.request_id == "none" for s in states(watcher)), timeout=30)
        watcher.publish(COMMAND, json.dumps({"target": "M 42", "request_id": "r1", "origin": {"kind": "cli"}}))
        watcher.wait_for(lambda _: any(s.status == "done" for s in states(watcher)), timeout=240)

    unknown = next(s for s in states(watcher) if s.request_id == "none")
    assert unknown.status == "failed" and "no accepted, calibrated lights of 'M 31'" in unknown.reason
    mine = [s for s in states(watcher) if s.request_id == "r1"]
    registering = [s for s in mine if s.status == "registering"]
    stacking = [s for s in mine if s.status == "stacking"]
    assert registering and registering[-1].done == registering[-1].total == 6
    assert stacking[0].done == 0 and stacking[-1].done == stacking[-1].total == 800
    done = mine[-1]
    assert done.status == "done" and done.target == "M 42" and done.filter == "L" and done.done == 6

    built = [ImagingProjectStack.model_validate_json(m.payload) for m in watcher.on(BUILT)]
    assert len(built) == 1
    stack = built[0]
    assert stack.stack_id == done.stack_id and stack.path == done.path == "stacks/project/M_42/L/stack.fits"
    assert stack.nights == list(NIGHTS) and stack.frames == 6 and stack.left_out == 0
    assert stack.integration_s == 360.0 and stack.rejection == "winsorized 3/3"
    assert (run.repository / stack.sample).is_file() and (run.repository / stack.thumbnail).is_file()
    assert events(watcher, "project_stack_built")[-1].data["path"] == stack.path
    with fits.open(run.repository / stack.path) as hdus:
        image = hdus[0].data.astype(np.float64)
        assert hdus[0].header["NCOMBINE"] == 6 and hdus[0].header["NIGHTS"] == 2
    ratio = flux_over_truth(image, reference)  # the best graded light (night 1, first) is the reference
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)

    late = Watcher(mosquitto.port, [STATE])  # a late joiner gets the last state
    try:
        late.wait_for(bool, timeout=10)
        last = ImagingProjectStackState.model_validate_json(late.messages[0].payload)
        assert late.messages[0].retain and last.status == "done" and last.stack_id == stack.stack_id
    finally:
        late.close()

    # The same from the command line (the service stopped): the stack built again, in the same place.
    capsys.readouterr()
    assert stack_project_command(["stack-project", "-c", str(run.config_path), "M 42", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "M 42 / L: 6 lights of 2 night(s), 0.10 h" in printed and printed.strip().endswith(stack.path)
    assert stack_project_command(["stack-project", "-c", str(run.config_path), "M 31"]) == 1
    assert "no accepted, calibrated lights of 'M 31'" in capsys.readouterr().err
