"""The dashboard in a real browser: Playwright driving Debian's Chromium.

Screenshots of each step go to the test's temporary directory (never into the repository).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from obsy.messages import AllskyFrame, AllskyStreak, McpState
from tests.support.lazy_import import importorskip_lazily
from tests.support.mosquitto import MosquittoBroker
from tests.support.pretend_mcp import PretendMcp
from tests.support.watcher import Watcher
from tests.support.web_server import PASSWORD, RunningWeb

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = importorskip_lazily("playwright.sync_api")
if CHROMIUM is None:
    pytest.skip("Chromium is not installed (Debian package chromium)", allow_module_level=True)

LIVE_DEADLINE_MS = 2000  # the issue's promise: a change on the bus shows within 2 s


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Iterator[RunningWeb]:
    workdir = tmp_path_factory.mktemp("web-browser")
    broker = MosquittoBroker(workdir)
    broker.start()
    server = RunningWeb(workdir, broker, f"sqlite:///{workdir / 'obsy.sqlite3'}", command_timeout=5).start()
    server.broker = broker
    server.add_user("vera", "viewer")
    server.add_user("otto", "operator")
    try:
        yield server
    finally:
        server.stop()
        broker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def log_in(browser, web: RunningWeb, username: str, **context_options):
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.goto(f"{web.url}/")
    assert "/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web.url}/")
    return page


def test_overview_loads_and_follows_the_bus_without_reloading(browser, web, tmp_path):
    expect = playwright_api.expect
    page = log_in(browser, web, "vera")
    expect(page.locator("#services")).to_contain_text("web")
    expect(page.locator("#live-status")).to_have_text("live")
    page.evaluate("window.stillTheSamePage = true")
    page.screenshot(path=tmp_path / "overview-before.png", full_page=True)

    watcher = Watcher(web.broker.port, ["obsy/mcp/state"])
    try:
        state = McpState(state="observing", reason="browser test: all conditions safe", roof="open", safe=True)
        watcher.publish("obsy/mcp/state", state.to_json(), retain=True)
        expect(page.locator("#mcp-state")).to_have_text("observing", timeout=LIVE_DEADLINE_MS)
        expect(page.locator("#mcp-reason")).to_have_text("browser test: all conditions safe", timeout=LIVE_DEADLINE_MS)
        expect(page.locator("#mcp-roof")).to_have_text("open", timeout=LIVE_DEADLINE_MS)
        verdict = '{"safe": false, "reasons": [{"quantity": "rain", "message": "rain detected"}]}'
        watcher.publish("obsy/weather/safety", verdict, retain=True)
        expect(page.locator("#safety-verdict")).to_have_text("unsafe", timeout=LIVE_DEADLINE_MS)
        expect(page.locator("#safety-reasons")).to_contain_text("rain detected", timeout=LIVE_DEADLINE_MS)
    finally:
        watcher.close()
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place, not reloaded
    page.screenshot(path=tmp_path / "overview-after.png", full_page=True)
    page.context.close()


def test_a_viewer_cannot_send_a_roof_command(browser, web):
    page = log_in(browser, web, "vera")
    assert page.locator("#commands button").count() == 0
    playwright_api.expect(page.locator("#commands-hidden")).to_contain_text("operator")
    # Not even by calling the API from the page with the session's own CSRF token.
    status = page.evaluate(
        """async () => {
            try { await obsy.api("POST", "/api/v1/commands/roof", {action: "OPEN"}); return 200; }
            catch (error) { return error.status; }
        }"""
    )
    assert status == 403
    page.context.close()


def test_an_operator_sends_a_roof_command_and_sees_the_mcps_answer(browser, web, tmp_path):
    expect = playwright_api.expect
    mcp = PretendMcp(web.broker.port)
    try:
        page = log_in(browser, web, "otto")
        page.click("button[data-command=roof][data-value=CLOSE]")
        expect(page.locator("#command-result")).to_have_text(
            "MCP answered: closing: operator asked: CLOSE", timeout=10_000
        )
        expect(page.locator("#mcp-state")).to_have_text("closing", timeout=LIVE_DEADLINE_MS)
        page.click("button[data-command=roof][data-value=OPEN]")
        expect(page.locator("#command-result")).to_contain_text("OPEN refused: unsafe", timeout=10_000)
        page.screenshot(path=tmp_path / "operator.png", full_page=True)
        assert mcp.commands == ["CLOSE", "OPEN"]
        # The events page shows who sent them (once the ingestor has stored the audit events).
        with web.login("otto") as client:
            web.wait_until(lambda: client.get("/api/v1/events", params={"service": "web"}).json()["total"] >= 2)
        page.goto(f"{web.url}/events")
        expect(page.locator("#events")).to_contain_text("web user otto, role operator", timeout=10_000)
        page.context.close()
    finally:
        mcp.close()


def test_the_pages_fit_a_phone_screen(browser, web, tmp_path):
    width = 390
    page = log_in(browser, web, "otto", viewport={"width": width, "height": 844}, is_mobile=True, has_touch=True)
    for path in ("/", "/weather", "/allsky", "/targets", "/plan", "/events"):
        page.goto(f"{web.url}{path}")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.scrollingElement.scrollWidth") - width
        assert overflow <= 0, f"{path} is {overflow} px wider than a phone screen"
        page.screenshot(path=tmp_path / f"phone{path.replace('/', '-') or '-overview'}.png", full_page=True)
    page.context.close()


def test_the_allsky_page_shows_a_nights_meteors_as_a_gallery(browser, web, tmp_path):
    import cv2
    import numpy as np

    expect = playwright_api.expect
    night_dir = web.data_dir / "allsky" / "2026-01-20"
    (night_dir / "streaks").mkdir(parents=True, exist_ok=True)
    frame_file = night_dir / "20260120T221503250Z.jpg"
    frame_file.write_bytes(cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes())
    crop = night_dir / "streaks" / "20260120T221503250Z-1-meteor.png"
    picture = np.zeros((40, 60, 3), np.uint8)
    cv2.line(picture, (5, 5), (50, 30), (255, 255, 255), 2)
    crop.write_bytes(cv2.imencode(".png", picture)[1].tobytes())
    frame = AllskyFrame(frame_id="20260120T221503250Z", night="2026-01-20", exposure_s=10, url=frame_file.as_uri())
    streak = AllskyStreak(
        frame_id=frame.frame_id,
        night="2026-01-20",
        kind="meteor",
        start=(10.0, 10.0),
        end=(90.0, 50.0),
        length_px=89.4,
        length_deg=12.3,
        snr=11.0,
        steadiness=0.4,
        fade=0.3,
        exposure_s=10,
        crop_url=crop.as_uri(),
    )
    watcher = Watcher(web.broker.port, ["obsy/allsky/#"])
    try:
        watcher.publish("obsy/allsky/frames", frame.to_json())
        watcher.publish("obsy/allsky/streaks", streak.to_json())
    finally:
        watcher.close()
    with web.login("vera") as client:
        web.wait_until(lambda: len(client.get("/api/v1/allsky/nights/2026-01-20/streaks").json()) == 1)
    page = log_in(browser, web, "vera")
    page.goto(f"{web.url}/allsky")
    page.select_option("#night", "2026-01-20")
    expect(page.locator("#streaks figure")).to_have_count(1)
    expect(page.locator("#streaks figcaption")).to_contain_text("meteor")
    expect(page.locator("#streaks figcaption")).to_contain_text("12.3°")
    image = page.locator("#streaks img")
    expect(image).to_have_attribute("src", "/api/v1/files/allsky/2026-01-20/streaks/20260120T221503250Z-1-meteor.png")
    page.wait_for_function("document.querySelector('#streaks img').naturalWidth === 60")
    page.screenshot(path=tmp_path / "allsky-streaks.png", full_page=True)
    page.context.close()


def test_an_operator_adds_a_target_by_catalogue_name(browser, web):
    expect = playwright_api.expect
    page = log_in(browser, web, "otto")
    page.goto(f"{web.url}/targets")
    page.fill("input[name=catalogue_name]", "M 42")
    page.click("#lookup")
    expect(page.locator("#lookup-result")).to_contain_text("NGC1976")
    page.fill("textarea[name=plans]", "Ha 600 10")
    page.click("#target-form button[type=submit]")
    expect(page.locator("#form-result")).to_have_text("saved")
    expect(page.locator("#targets")).to_contain_text("M 42")
    expect(page.locator("#targets")).to_contain_text("Ha 600s×10 (0 acquired)")
    page.locator("#targets tr", has_text="M 42").locator("[data-edit]").click()
    expect(page.locator("textarea[name=plans]")).to_have_value("Ha 600 10 0")  # an edit keeps acquired
    page.context.close()


def test_the_imaging_page_follows_the_live_stack_and_plots_the_light_curve(browser, web, tmp_path):
    import cv2
    import numpy as np

    from obsy.messages import ImagingCalibrated, ImagingLiveStack, ImagingMaster, ImagingMastersState, ImagingPhotometry

    expect = playwright_api.expect
    preview = web.data_dir / "imaging" / "repository" / "stacks" / "2026-02-10" / "3" / "preview.jpg"
    preview.parent.mkdir(parents=True, exist_ok=True)
    preview.write_bytes(cv2.imencode(".jpg", np.full((30, 40, 3), 90, np.uint8))[1].tobytes())

    def fold(frames: int) -> ImagingLiveStack:
        return ImagingLiveStack(
            stack_id=3,
            night="2026-02-10",
            target="M 101",
            filter="L",
            frames=frames,
            integration_s=60.0 * frames,
            left_out=1,
            reference="lights/first.fits",
            path="stacks/2026-02-10/3/stack.fits",
            preview="stacks/2026-02-10/3/preview.jpg",
            frame_id=40 + frames,
            weight=1.0,
            shift_px=(0.5, 0.5),
            rotation_deg=0.0,
            fold_s=0.7,
        )

    watcher = Watcher(web.broker.port, ["obsy/imaging/#"])
    try:
        watcher.publish("obsy/imaging/livestack/state", fold(2).to_json(), retain=True)
        master = ImagingMaster(
            master_id="bias-browser", kind="bias", path="masters/bias.fits", exposure_s=0.0, frames=30, method="median"
        )
        watcher.publish("obsy/imaging/masters", master.to_json())
        pins = ImagingMastersState(status="done", action="pin", pinned=["bias-browser"])
        watcher.publish("obsy/imaging/masters/state", pins.to_json(), retain=True)
        light = ImagingCalibrated(
            frame_id=41,
            light="lights/2026-02-10/M_101/L/light_1.fits",
            path="calibrated/light_1.fits",
            night="2026-02-10",
            target="M 101",
            filter="L",
            bias="bias-browser",
            explanation=["bias: the newest of 30 frames at -10 °C"],
        )
        watcher.publish("obsy/imaging/calibrated", light.to_json())
        for n in range(6):
            point = ImagingPhotometry(
                frame_id=900 + n,
                path=f"calibrated/{n}.fits",
                night="2026-02-10",
                target="RR Lyr",
                filter="V",
                band="V",
                jd=2461082.4 + n / 200,
                magnitude=7.5 + 0.1 * n,
                error=0.01,
                check="85",
                check_residual=0.005 * (n - 3),
            )
            watcher.publish("obsy/imaging/photometry", point.to_json())
        with web.login("vera") as client:
            web.wait_until(lambda: len(client.get("/api/v1/photometry/RR%20Lyr").json()["points"]) == 6)
            web.wait_until(lambda: client.get("/api/v1/imaging/stacks").json() != [])
        page = log_in(browser, web, "vera")
        page.goto(f"{web.url}/imaging")
        expect(page.locator("#live-status")).to_have_text("live")
        stack = page.locator("#stacks figure[data-stack='3']")
        expect(stack).to_contain_text("M 101 · L")
        expect(stack.locator(".frames")).to_have_text("2 frames")
        expect(stack.locator(".left-out")).to_have_text("1 left out")
        page.wait_for_function("document.querySelector(\"#stacks figure[data-stack='3'] img\").naturalWidth === 40")
        expect(page.locator("#masters tbody")).to_contain_text("bias")
        expect(page.locator("#masters tbody .pinned")).to_have_text("pinned")
        expect(page.locator("#masters button.pin")).to_have_count(0)  # nor pin one
        expect(page.locator("#calibrated tbody")).to_contain_text("light_1.fits")
        expect(page.locator("#calibrated tbody")).to_contain_text("bias bias-browser")
        expect(page.locator("#calibrated tbody")).to_contain_text("the newest of 30 frames")
        expect(page.locator("#build-masters")).to_have_count(0)  # a viewer cannot build masters
        expect(page.locator("#lc-target")).to_have_value("RR Lyr")
        expect(page.locator("#lightcurve circle.point")).to_have_count(6)
        expect(page.locator("#checkcurve circle.point")).to_have_count(6)
        expect(page.locator("#lc-csv")).to_have_attribute(
            "href", "/api/v1/photometry/RR%20Lyr?night=2026-02-10&format=csv"
        )
        page.select_option("#lc-filter", "V")
        expect(page.locator("#lc-csv")).to_have_attribute(
            "href", "/api/v1/photometry/RR%20Lyr?night=2026-02-10&filter=V&format=csv"
        )
        expect(page.locator("#lightcurve circle.point")).to_have_count(6)

        page.evaluate("window.stillTheSamePage = true")
        watcher.publish("obsy/imaging/livestack/state", fold(3).to_json(), retain=True)
        expect(stack.locator(".frames")).to_have_text("3 frames", timeout=LIVE_DEADLINE_MS)
        expect(stack.locator("img")).to_have_attribute("src", "/api/v1/imaging/stacks/3/preview?frames=3")
        more = ImagingPhotometry(
            frame_id=999,
            path="calibrated/9.fits",
            night="2026-02-10",
            target="RR Lyr",
            filter="V",
            jd=2461082.45,
            magnitude=8.2,
            error=0.01,
        )
        watcher.publish("obsy/imaging/photometry", more.to_json())
        expect(page.locator("#lightcurve circle.point")).to_have_count(7, timeout=5000)
        assert page.evaluate("window.stillTheSamePage") is True
        page.screenshot(path=tmp_path / "imaging.png", full_page=True)
        page.context.close()
    finally:
        watcher.close()


def test_the_imaging_page_shows_a_transit_nights_fit_plot_and_downloads(browser, web):
    import cv2
    import numpy as np

    from obsy.messages import ImagingTransit

    expect = playwright_api.expect
    folder = web.data_dir / "imaging" / "repository" / "reports" / "exoplanet" / "2026-10-15"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "HAT-P-32_b.png").write_bytes(cv2.imencode(".png", np.full((70, 100, 3), 200, np.uint8))[1].tobytes())
    (folder / "HAT-P-32_b.txt").write_text("#TYPE=EXOPLANET\n")
    (folder / "HAT-P-32_b.csv").write_text(
        "frame_id,bjd_tdb,flux,error,airmass,background,fwhm,x,y,model,residual,used,reason\n"
    )
    fit = ImagingTransit(
        fit_id=1, night="2026-10-15", planet="HAT-P-32 b", target="HAT-P-32", status="fitted", filter="R", epoch=900,
        tc=2461329.41234, tc_err=0.00061, o_minus_c_min=-1.25, o_minus_c_err_min=0.9, depth=0.0231, depth_err=0.0006,
        rp_rs=0.152, rp_rs_err=0.002, duration_h=3.1, partial=True, contact="egress", points_used=180,
        points_rejected=3, ensemble_size=7, report="reports/exoplanet/2026-10-15/HAT-P-32_b.txt",
        plot="reports/exoplanet/2026-10-15/HAT-P-32_b.png", points="reports/exoplanet/2026-10-15/HAT-P-32_b.csv",
    )  # fmt: skip
    watcher = Watcher(web.broker.port, ["obsy/imaging/transits"])
    try:
        page = log_in(browser, web, "vera")
        page.goto(f"{web.url}/imaging")
        expect(page.locator("#live-status")).to_have_text("live")
        watcher.publish("obsy/imaging/transits", fit.to_json())  # arrives while the page is open
        expect(page.locator("#tr-planet")).to_have_value("HAT-P-32 b", timeout=5000)
        expect(page.locator("#tr-fit")).to_contain_text("2461329.41234 ± 0.00061")
        expect(page.locator("#tr-fit")).to_contain_text("-1.25 ± 0.90 min")
        expect(page.locator("#tr-fit")).to_contain_text("partial (egress only)")
        expect(page.locator("#tr-fit")).to_contain_text("180 used, 3 left out, ensemble of 7 stars")
        page.wait_for_function(
            "document.querySelector('#tr-plot img') && document.querySelector('#tr-plot img').naturalWidth === 100"
        )
        expect(page.locator("#tr-report")).to_have_attribute(
            "href", "/api/v1/transits/HAT-P-32%20b/report?night=2026-10-15"
        )
        expect(page.locator("#tr-csv")).to_have_attribute(
            "href", "/api/v1/transits/HAT-P-32%20b?night=2026-10-15&format=csv"
        )
        page.context.close()
    finally:
        watcher.close()


def test_an_operator_builds_masters_from_the_imaging_page(browser, web):
    from tests.support.pretend_imaging import PretendImaging

    expect = playwright_api.expect
    imaging = PretendImaging(web.broker.port)
    try:
        page = log_in(browser, web, "otto")
        page.goto(f"{web.url}/imaging")
        expect(page.locator("#live-status")).to_have_text("live")
        page.click("#build-masters")
        expect(page.locator("#build-result")).to_have_text("imaging service: running")
        expect(page.locator("#masters-state")).to_have_text("done · built 1 · by otto", timeout=LIVE_DEADLINE_MS)
        assert [(c.origin.user, c.origin.role) for c in imaging.commands] == [("otto", "operator")]

        # A master pinned from its row of the list.
        from obsy.messages import ImagingMaster

        master = ImagingMaster(
            master_id="dark-pin", kind="dark", path="masters/d.fits", exposure_s=60, frames=9, method="median"
        )
        watcher = Watcher(web.broker.port, ["obsy/imaging/#"])
        try:
            watcher.publish("obsy/imaging/masters", master.to_json())  # the page follows the bus: its row appears
            page.click("#masters button.pin[data-master='dark-pin']", timeout=LIVE_DEADLINE_MS)
            expect(page.locator("#build-result")).to_have_text("imaging service: running")
        finally:
            watcher.close()
        assert (imaging.commands[-1].action, imaging.commands[-1].master_id) == ("pin", "dark-pin")
        page.context.close()
    finally:
        imaging.close()


def test_a_targets_page_shows_its_stack_plan_frames_and_follows_the_night(browser, web, tmp_path):
    from datetime import timedelta

    from obsy.messages import ImagingFrame
    from tests.support.target_page import PLANS, publish_target_night

    expect = playwright_api.expect
    watcher = Watcher(web.broker.port, ["obsy/imaging/#"])
    night = "2025-12-20"  # before the other imaging tests' nights: the Imaging page still opens on theirs
    try:
        truth = publish_target_night(
            lambda topic, payload: watcher.publish(f"obsy/{topic}", payload),
            web.data_dir / "imaging" / "repository",
            target="NGC 7000",
            night=night,
        )
        with web.login("otto") as operator:
            reply = operator.post(
                "/api/v1/targets", json={"name": "NGC 7000", "ra_deg": 314.7, "dec_deg": 44.3, "exposure_plans": PLANS}
            )
            assert reply.status_code == 201, reply.text
            web.wait_until(lambda: operator.get("/api/v1/imaging/targets/NGC 7000").json()["night_stacks"])
        page = log_in(browser, web, "vera")
        page.goto(f"{web.url}/imaging")  # the Imaging page lists the targets, each with its page
        page.locator("#imaging-targets a", has_text="NGC 7000").click()
        page.wait_for_url(f"{web.url}/imaging/targets/NGC%207000")
        expect(page.locator("#live-status")).to_have_text("live")
        expect(page.locator("#target-name")).to_have_text("NGC 7000")
        stack = page.locator("#stacks figure[data-stack='40']")
        expect(stack.locator(".frames")).to_have_text("3 frames")
        page.wait_for_function("document.querySelector(\"#stacks figure[data-stack='40'] img\").naturalWidth === 600")
        expect(stack.locator("a[download]")).to_have_attribute("href", "/api/v1/imaging/stacks/40/fits")
        ha = page.locator("#progress tbody tr", has_text="Ha")
        expect(ha.locator(".accepted")).to_have_text("3")
        expect(ha).to_contain_text("10 (50.0 min)")
        expect(page.locator("#progress tbody tr", has_text="SII")).to_contain_text("0")
        tiles = page.locator("#frames figure")
        expect(tiles).to_have_count(len(truth.lights))
        expect(page.locator("#frames figure.rejected")).to_have_count(1)
        expect(page.locator("#frames figure.rejected")).to_contain_text("FWHM 6.50 px above the limit")
        page.wait_for_function(
            "[...document.querySelectorAll('#frames img')].every((i) => i.complete && i.naturalWidth === 200)"
        )
        expect(page.locator("#fwhm-chart circle.point")).to_have_count(len(truth.lights))
        expect(page.locator("#background-chart circle.point")).to_have_count(len(truth.lights))
        expect(page.locator("#night-stacks tbody")).to_contain_text("winsorized 3/3")
        expect(page.locator("#night-stacks a[download]")).to_have_attribute(
            "href", "/api/v1/imaging/nightstacks/41/fits"
        )

        # The night goes on: a new light is graded and folded; the page follows without a reload.
        page.evaluate("window.stillTheSamePage = true")
        last = truth.lights[-1]
        newest = ImagingFrame(
            frame_id=last.frame_id + 10,
            sha256="f" * 64,
            path=f"lights/{night}/newest.fits",
            source="/capture/newest.fits",
            frame_type="light",
            night=night,
            target="NGC 7000",
            filter="Ha",
            exposure_s=300.0,
            date_obs=last.date_obs + timedelta(minutes=6),
            accepted=True,
            fwhm_px=2.9,
            background=1002.0,
        )
        watcher.publish("obsy/imaging/frames", newest.to_json())
        fold = truth.live_stack.model_copy(
            update={"frames": 4, "integration_s": 1200.0, "frame_id": newest.frame_id, "timestamp": newest.timestamp}
        )
        watcher.publish("obsy/imaging/livestack/state", fold.to_json())
        expect(stack.locator(".frames")).to_have_text("4 frames", timeout=LIVE_DEADLINE_MS)
        expect(tiles).to_have_count(len(truth.lights) + 1, timeout=5000)
        newest_tile = page.locator(f"#frames figure[data-frame='{newest.frame_id}']")
        expect(newest_tile).to_contain_text("accepted")
        expect(newest_tile.locator("img")).to_have_count(0)  # its FITS is not in the repository: no thumbnail
        expect(ha.locator(".accepted")).to_have_text("4")
        assert page.evaluate("window.stillTheSamePage") is True
        page.screenshot(path=tmp_path / "target.png", full_page=True)
        page.context.close()
    finally:
        watcher.close()


def test_a_targets_page_shows_its_light_curve_and_its_transits_and_no_empty_cards(browser, web, tmp_path):
    import cv2
    import numpy as np

    from obsy.messages import ImagingPhotometry, ImagingTransit
    from tests.support.target_page import publish_target_night

    expect = playwright_api.expect
    folder = web.data_dir / "imaging" / "repository" / "reports"
    (folder / "aavso" / "2025-12-17").mkdir(parents=True, exist_ok=True)
    (folder / "aavso" / "2025-12-17" / "SS_Cyg.txt").write_text("#TYPE=EXTENDED\n")
    (folder / "exoplanet" / "2025-12-18").mkdir(parents=True, exist_ok=True)
    (folder / "exoplanet" / "2025-12-18" / "WASP-12_b.png").write_bytes(
        cv2.imencode(".png", np.full((60, 90, 3), 180, np.uint8))[1].tobytes()
    )
    (folder / "exoplanet" / "2025-12-18" / "WASP-12_b.txt").write_text("#TYPE=EXOPLANET\n")
    fit = ImagingTransit(
        fit_id=2, night="2025-12-18", planet="WASP-12 b", target="WASP-12", status="fitted", filter="R", epoch=1200,
        tc=2461028.51234, tc_err=0.00042, depth=0.0142, depth_err=0.0004, points_used=150, points_rejected=2,
        report="reports/exoplanet/2025-12-18/WASP-12_b.txt", plot="reports/exoplanet/2025-12-18/WASP-12_b.png",
    )  # fmt: skip
    watcher = Watcher(web.broker.port, ["obsy/imaging/#"])
    try:
        for n in range(5):
            point = ImagingPhotometry(
                frame_id=1900 + n,
                path=f"calibrated/ss-{n}.fits",
                night="2025-12-17",
                target="SS Cyg",
                filter="V",
                band="V",
                jd=2461027.4 + n / 200,
                magnitude=11.8 - 0.2 * n,
                error=0.02,
                check="120",
                check_residual=0.004 * (n - 2),
                report="reports/aavso/2025-12-17/SS_Cyg.txt" if n == 4 else None,
            )
            watcher.publish("obsy/imaging/photometry", point.to_json())
        watcher.publish("obsy/imaging/transits", fit.to_json())
        publish_target_night(  # a target with lights and stacks, and neither photometry nor a transit
            lambda topic, payload: watcher.publish(f"obsy/{topic}", payload),
            web.data_dir / "imaging" / "repository",
            target="IC 1396",
            night="2025-12-16",
            first_id=1700,
            stack_id=70,
        )
        with web.login("vera") as client:
            web.wait_until(lambda: len(client.get("/api/v1/photometry/SS%20Cyg").json()["points"]) == 5)
            web.wait_until(lambda: client.get("/api/v1/transits?planet=WASP-12%20b").json() != [])
            web.wait_until(lambda: client.get("/api/v1/imaging/targets/IC 1396").json()["night_stacks"])
        page = log_in(browser, web, "vera")

        page.goto(f"{web.url}/imaging/targets/SS%20Cyg")
        card = page.locator("#target-light-curve")
        expect(card).to_be_visible()
        expect(card.locator("#lightcurve circle.point")).to_have_count(5)
        expect(card.locator("#checkcurve circle.point")).to_have_count(5)
        expect(card.locator("#lc-summary")).to_have_text("5 of 5 lights with a magnitude")
        expect(card.locator("#lc-report")).to_have_attribute(
            "href", "/api/v1/photometry/SS%20Cyg/report?night=2025-12-17"
        )
        expect(card.locator("#lc-csv")).to_have_attribute(
            "href", "/api/v1/photometry/SS%20Cyg?night=2025-12-17&format=csv"
        )
        expect(page.locator("#target-transits")).to_be_hidden()
        card.screenshot(path=tmp_path / "light-curve.png")

        page.goto(f"{web.url}/imaging/targets/WASP-12")
        transit = page.locator("#target-transits figure.transit[data-planet='WASP-12 b'][data-night='2025-12-18']")
        expect(transit).to_contain_text("2461028.51234 ± 0.00042")
        expect(transit).to_contain_text("1.420 ± 0.040 %")  # the depth
        expect(transit.locator("a.transit-report")).to_have_attribute(
            "href", "/api/v1/transits/WASP-12%20b/report?night=2025-12-18"
        )
        page.wait_for_function("document.querySelector('#target-transits img.transit-plot')?.naturalWidth === 90")
        expect(page.locator("#target-light-curve")).to_be_hidden()
        page.locator("#target-transits").screenshot(path=tmp_path / "transits.png")

        with (
            page.expect_response(lambda r: r.url.endswith("/api/v1/photometry")) as photometry,
            page.expect_response(lambda r: r.url.endswith("/api/v1/transits")) as transits,
        ):
            page.goto(f"{web.url}/imaging/targets/IC%201396")
        assert photometry.value.json() and transits.value.json()  # others' results: none of this target's
        expect(page.locator("#stacks figure[data-stack='70']")).to_be_visible()
        page.evaluate("new Promise((done) => setTimeout(done, 100))")  # the page has read both answers
        expect(page.locator("#target-light-curve")).to_be_hidden()
        expect(page.locator("#target-transits")).to_be_hidden()
        page.context.close()
    finally:
        watcher.close()
