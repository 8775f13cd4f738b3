"""The fleet in a real browser (Playwright, Debian's Chromium): a bridged site's own page, and the
closing commands an operator at the centre sends down the site's real Mosquitto bridge.

One site, ``north``, on its own broker bridged to the central one (deploy/make_bridge.py, plain
TCP on loopback); the site's MCP is played by a client on the site's broker that answers the
command it receives on ``obsy/mcp/remote/<thing>/set``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from obsy.messages import Event, McpState, Reading, SafetyVerdict, WeatherState
from tests.integration.web.test_web_browser import CHROMIUM, log_in, playwright_api
from tests.integration.web.test_web_fleet_bridges import make_bridge
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = [pytest.mark.integration, pytest.mark.slow]
assert CHROMIUM is not None


class BridgedSite:
    def __init__(self, tmp_path) -> None:
        (tmp_path / "central").mkdir()
        self.central = MosquittoBroker(tmp_path / "central")
        self.central.start()
        out = tmp_path / "north" / "bridge"
        argv = ["--site", "north", "--central-host", "127.0.0.1", "--central-port", str(self.central.port), "--plain"]
        assert make_bridge().main([*argv, "--out", str(out)]) == 0
        self.broker = MosquittoBroker(tmp_path / "north", extra_config=(out / "bridge.conf").read_text())
        self.broker.start()
        self.mcp = Watcher(self.broker.port, ["obsy/mcp/remote/+/set"])

    def answer_commands(self, stop: threading.Event) -> None:
        """The site's MCP: accepts each closing command it receives, as the real one does."""
        answered = 0
        while not stop.is_set():
            try:
                received = self.mcp.wait_for(lambda messages, seen=answered: len(messages) > seen, 1)
            except TimeoutError:
                continue
            for message in received[answered:]:
                command = json.loads(message.payload)
                thing = message.topic.split("/")[-2]
                event = Event(
                    service="mcp",
                    kind="command_accepted",
                    message=f"{thing} {command['value']} accepted",
                    data={"command": {"thing": thing, "value": command["value"]}, "origin": command["origin"]},
                )
                self.mcp.publish("obsy/mcp/events", event.to_json())
            answered = len(received)

    def stop(self) -> None:
        self.mcp.close()
        self.broker.stop()
        self.central.stop()


@pytest.fixture
def site(tmp_path) -> Iterator[BridgedSite]:
    bridged = BridgedSite(tmp_path)
    try:
        yield bridged
    finally:
        bridged.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.long(seconds=60)
def test_an_operator_closes_a_bridged_sites_roof_from_the_fleet_page_and_sees_its_page(browser, site, tmp_path):
    expect = playwright_api.expect
    (tmp_path / "web").mkdir()
    web = RunningWeb(
        tmp_path / "web",
        site.central,
        f"sqlite:///{tmp_path / 'web' / 'obsy.sqlite3'}",
        sites=[{"prefix": "sites/north"}],
    ).start(timeout=60)
    stop = threading.Event()
    answering = threading.Thread(target=site.answer_commands, args=(stop,), daemon=True)
    answering.start()
    try:
        web.add_user("otto", "operator")
        web.add_user("vera", "viewer")
        web.add_user("southop", "operator", sites=["south"])
        now = datetime.now(UTC)
        site.mcp.publish(
            "obsy/mcp/state", McpState(state="observing", roof="open", mode="auto", timestamp=now).to_json()
        )
        site.mcp.publish("obsy/weather/safety", SafetyVerdict(safe=True, timestamp=now).to_json())
        readings = {"humidity": Reading(value=71.5, unit="%", measured_at=now)}
        site.mcp.publish("obsy/weather/state", WeatherState(readings=readings, timestamp=now).to_json())
        site.mcp.publish(
            "obsy/weather/events", Event(service="weather", kind="north_marker", message="hello from north").to_json()
        )

        page = log_in(browser, web, "otto")
        page.goto(f"{web.url}/fleet")
        row = page.locator('tr[data-site="north"]')
        expect(row).to_contain_text("reachable", timeout=30_000)
        expect(row).to_contain_text("safe", timeout=30_000)
        for action in ("CLOSE", "STOP", "ABORT"):
            expect(row.locator(f'button[data-action="{action}"]')).to_be_enabled()
        expect(page.locator('button[data-action="OPEN"]')).to_have_count(0)
        expect(page.get_by_role("button", name="OPEN")).to_have_count(0)

        # CLOSE: asked to confirm, sent down the bridge to the site MCP's remote topic, answered.
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator('button[data-action="CLOSE"]').click()
        expect(page.locator("#command-result")).to_have_text("north: roof CLOSE sent", timeout=15_000)
        received = [m for m in site.mcp.on("obsy/mcp/remote/roof/set")]
        assert len(received) == 1
        command = json.loads(received[0].payload)
        assert command["value"] == "CLOSE" and command["origin"]["user"] == "otto"
        # STOP goes without a question; ABORT ends the night.
        row.locator('button[data-action="STOP"]').click()
        expect(page.locator("#command-result")).to_have_text("north: roof STOP sent", timeout=15_000)
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator('button[data-action="ABORT"]').click()
        expect(page.locator("#command-result")).to_have_text("north: night ABORT sent", timeout=15_000)
        assert [json.loads(m.payload)["value"] for m in site.mcp.on("obsy/mcp/remote/night/set")] == ["ABORT"]
        page.screenshot(path=tmp_path / "fleet-commands.png", full_page=True)

        # The site's own page: its status, weather and events, filtered to it.
        row.get_by_role("link", name="north").click()
        page.wait_for_url(f"{web.url}/sites/north")
        expect(page.locator("#site-roof")).to_have_text("open", timeout=15_000)
        expect(page.locator("#site-verdict")).to_have_text("safe")
        expect(page.locator("#site-weather")).to_contain_text("humidity")
        expect(page.locator("#site-weather")).to_contain_text("71.5")
        expect(page.locator("#site-events")).to_contain_text("north_marker", timeout=15_000)
        expect(page.locator("#site-commands button")).to_have_count(3)
        page.screenshot(path=tmp_path / "site-page.png", full_page=True)
        # The centre's own page of its site shows none of north's events.
        page.goto(f"{web.url}/sites/obsy")
        expect(page.locator("#site-link")).to_have_text("reachable")
        expect(page.locator("#site-events")).not_to_contain_text("north_marker")
        expect(page.locator("#site-commands")).to_have_count(0)

        # A viewer sees no buttons; an account of another site cannot open north's page.
        viewer = log_in(browser, web, "vera")
        viewer.goto(f"{web.url}/fleet")
        expect(viewer.locator('tr[data-site="north"]')).to_contain_text("reachable", timeout=15_000)
        expect(viewer.locator("button.site-command")).to_have_count(0)
        with web.login("southop") as other:
            assert other.get("/sites/north").status_code == 403
            assert other.get("/sites/nowhere").status_code == 404
        assert len(site.mcp.on("obsy/mcp/remote/roof/set")) == 2  # nothing more was sent

        # Cut off (the site's broker gone): the centre shows it unreachable and the buttons disabled.
        site.broker.stop()
        page.goto(f"{web.url}/fleet")
        expect(row).to_contain_text("unreachable since", timeout=60_000)
        expect(row.locator('button[data-action="CLOSE"]')).to_be_disabled()
    finally:
        stop.set()
        answering.join(5)
        web.stop()
