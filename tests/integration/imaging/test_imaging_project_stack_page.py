"""A project stack's progress on the target page, live, in Chromium: the real imaging service builds
a project stack of two nights' calibrated lights (commanded on the bus), the real web service sharing
its data directory as under compose stores the progress it publishes and forwards it to the page; the
page's bar shows each phase's done of total as it advances, then the finished stack from
``imaging/projectstacks`` with its FITS served byte for byte.

Every state of the bar the page shows is recorded in the page (a MutationObserver), so a state shown
for less than a poll is seen too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from obsy.messages import ImagingProjectStack, ImagingProjectStackState
from tests.integration.imaging.test_imaging_calibration_service import repository_of
from tests.integration.imaging.test_imaging_project_stack_service import BUILT, COMMAND, STATE
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.integration.web.test_web_browser import browser, log_in, playwright_api  # noqa: F401 (fixture)
from tests.support.live_stack import record, write_calibrated
from tests.support.stacking import offset_pointing, render
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Two nights, each framed otherwise: (east ", north ", angle) per light; enough lights that registering
#: them outlasts the service's 2 s between progress messages.
NIGHTS = {
    "2026-02-10": [(0.0, 0.0, 0.0), (8.0, -6.0, 0.0), (-7.0, 9.0, 0.0), (5.0, 5.0, 0.0), (-4.0, -8.0, 0.0)],
    "2026-02-12": [(30.0, -25.0, 180.0), (24.0, -18.0, 180.0), (36.0, -30.0, 180.0), (28.0, -22.0, 180.0)],
}
LIGHTS = sum(len(p) for p in NIGHTS.values())

RECORD_BAR = """() => {
  window.barSeen = [];
  const note = () => {
    const box = document.getElementById("project-progress"), bar = document.getElementById("project-bar");
    if (box.hidden) return;
    const text = (id) => document.getElementById(id).textContent;
    window.barSeen.push({status: box.dataset.status, value: bar.value, max: bar.max,
      text: text("project-phase"), eta: text("project-eta")});
  };
  new MutationObserver(note).observe(document.getElementById("project-progress"),
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.mark.long(seconds=120)
@pytest.mark.timeout(900)
def test_the_target_page_shows_a_project_stack_advance_and_its_result(browser, tmp_path, mosquitto):  # noqa: F811
    expect = playwright_api.expect
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    web = RunningWeb(tmp_path, mosquitto, f"sqlite:///{tmp_path / 'web.sqlite3'}").start()
    try:
        web.add_user("vera", "viewer")
        web.add_user("otto", "operator")
        with web.login("otto") as operator:  # planned: the target has its page before any light is stored
            reply = operator.post("/api/v1/targets", json={"name": "M 42", "ra_deg": 83.82, "dec_deg": -5.39})
            assert reply.status_code == 201, reply.text
        calibration = {"require_dark": False, "require_flat": False}
        with Running(tmp_path, mosquitto, calibration=calibration) as run:
            assert run.repository == web.config.imaging.repository_dir(web.config.data_dir)  # one data directory
            wait_online(watcher)
            repository = repository_of(run)
            seed = 70
            for night, pointings in NIGHTS.items():
                frames = [
                    render(offset_pointing(e, n), position_angle=pa, seed=(seed := seed + 1)) for e, n, pa in pointings
                ]
                paths = [write_calibrated(repository, f"{night}-{i}.fits", f.image) for i, f in enumerate(frames)]
                grades = [(100.0 - i, 3.0, True) for i in range(len(paths))]
                record(repository, paths, night=night, grades=grades)
            repository.engine.dispose()

            page = log_in(browser, web, "vera")
            page.goto(f"{web.url}/imaging/targets/M%2042")
            expect(page.locator("#live-status")).to_have_text("live")
            expect(page.locator("#project-stacks")).to_contain_text("no project stack yet")
            expect(page.locator("#project-progress")).to_be_hidden()
            page.evaluate("window.stillTheSamePage = true")
            page.evaluate(RECORD_BAR)

            watcher.publish(COMMAND, json.dumps({"target": "M 42", "request_id": "page", "origin": {"kind": "cli"}}))
            card = page.locator("#project-stacks figure.project")
            expect(card).to_have_count(1, timeout=240_000)
            expect(card.locator(".frames")).to_have_text(f"{LIGHTS} frames")
            expect(card).to_contain_text("of 2 night(s)")
            expect(page.locator("#project-progress")).to_have_attribute("data-status", "done")
            expect(page.locator("#project-phase")).to_have_text(f"L: done · {LIGHTS} of {LIGHTS} lights stacked")
            page.wait_for_function("document.querySelector('#project-stacks figure.project img').naturalWidth > 0")
            seen = page.evaluate("window.barSeen")
            assert page.evaluate("window.stillTheSamePage") is True  # followed live, not reloaded
            page.screenshot(path=tmp_path / "project-stack.png", full_page=True)

            # The time left, at the pace of the phase so far (the service's own clock): two states of a
            # phase 10 s apart, 200 of 800 rows done meanwhile, 500 left: about 25 s.
            start = datetime.now(UTC)
            for seconds, done in ((0, 100), (10, 300)):
                state = ImagingProjectStackState(
                    timestamp=start + timedelta(seconds=seconds), status="stacking", target="M 42", filter="R",
                    done=done, total=800,
                )  # fmt: skip
                watcher.publish(STATE, state.to_json(), retain=True)
            expect(page.locator("#project-phase")).to_have_text("R: stacking · 300 of 800 rows stacked")
            expect(page.locator("#project-eta")).to_have_text("· about 25 s left in this phase")
            expect(page.locator("#project-bar")).to_have_js_property("value", 300)

            with web.login("vera") as viewer:
                [stack] = viewer.get("/api/v1/imaging/targets/m42").json()["project_stacks"]
                served = viewer.get(stack["fits"])
                assert served.status_code == 200
                built = ImagingProjectStack.model_validate_json(watcher.on(BUILT)[-1].payload)
                assert served.content == (run.repository / built.path).read_bytes()
                assert stack["stack_id"] == built.stack_id and stack["nights"] == list(NIGHTS)
                progress = viewer.get("/api/v1/imaging/targets/M 42").json()["project_progress"]
                assert progress["status"] == "stacking" and progress["filter"] == "R"  # the last word heard
            page.context.close()
    finally:
        web.stop()
        watcher.close()

    sent = [ImagingProjectStackState.model_validate_json(m.payload) for m in watcher.on(STATE)]
    sent = [s for s in sent if s.request_id == "page"]
    assert sent[-1].status == "done" and sent[-1].stack_id == built.stack_id
    # The page showed the phases in the service's order, each bar advancing and never past its end.
    statuses = [s["status"] for s in seen]
    assert statuses[0] == "registering" and statuses[-1] == "done"
    order = {"registering": 0, "stacking": 1, "done": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    for phase, unit in (("registering", "lights registered"), ("stacking", "rows stacked")):
        bars = [(s["value"], s["max"]) for s in seen if s["status"] == phase]
        assert bars, f"the page never showed {phase}"
        assert [v for v, _ in bars] == sorted(v for v, _ in bars) and all(v <= m for v, m in bars)
        told = [s for s in sent if s.status == phase]
        assert (bars[-1][0], bars[-1][1]) == (told[-1].done, told[-1].total)
        assert any(f"of {told[-1].total} {unit}" in s["text"] for s in seen if s["status"] == phase)
        if any(0 < s.done < s.total for s in told[1:]):  # two messages of one phase: a pace, a time left
            assert any("left in this phase" in s["eta"] for s in seen if s["status"] == phase)
    assert any(0 < v < m for s in seen for v, m in [(s["value"], s["max"])]), "the bar was seen part-way"
