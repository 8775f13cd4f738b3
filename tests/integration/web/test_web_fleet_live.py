"""A bridged site's dashboard pages follow it live (Chromium, a real site broker bridged to the
central one by deploy/make_bridge.py's configuration).

The central broker receives the site's topics under its prefix (``sites/north/…``); the web service
hands them to the pages that show that site (``/api/v1/live?site=north``), with its topics relative
to its prefix as this site's are, and tells them when its bridge breaks. This site's own messages
never reach a page that shows another site.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from obsy.messages import McpState, SafetyVerdict
from tests.integration.web.test_web_browser import CHROMIUM, log_in, playwright_api
from tests.integration.web.test_web_fleet_browser import browser, site  # noqa: F401 (fixtures)
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = [pytest.mark.integration, pytest.mark.slow]
assert CHROMIUM is not None


def _followers(web: RunningWeb, site_id: str | None) -> int:
    hub = web.service.context.hub
    with hub._lock:
        return sum(1 for listener in hub._listeners if listener.site == site_id)


@pytest.mark.long(seconds=60)
def test_a_bridged_sites_overview_follows_its_messages_live_and_never_this_sites(browser, site, tmp_path):  # noqa: F811
    expect = playwright_api.expect
    (tmp_path / "web").mkdir()
    web = RunningWeb(
        tmp_path / "web",
        site.central,
        f"sqlite:///{tmp_path / 'web' / 'obsy.sqlite3'}",
        sites=[{"prefix": "sites/north"}],
    ).start(timeout=60)
    centre = Watcher(site.central.port, ["obsy/#"])  # publishes as this (the centre's) site's services
    try:
        web.add_user("vera", "viewer")
        now = datetime.now(UTC)
        site.mcp.publish(
            "obsy/mcp/state",
            McpState(state="observing", reason="north at work", roof="open", timestamp=now).to_json(),
            retain=True,
        )
        site.mcp.publish("obsy/weather/safety", SafetyVerdict(safe=True, timestamp=now).to_json(), retain=True)
        web.wait_until(lambda: web.service.fleet.overview(web.service.fleet.get("north"))["roof"] == "open", 30)

        page = log_in(browser, web, "vera")
        page.goto(f"{web.url}/?site=north")
        expect(page.locator("#mcp-roof")).to_have_text("open", timeout=15_000)
        expect(page.locator("#safety-verdict")).to_have_text("safe")
        web.wait_until(lambda: _followers(web, "north") == 1, 15)
        assert _followers(web, None) == 0  # the page does not follow this site's feed

        # This site's own MCP says something: the page showing north does not take it.
        centre.publish(
            "obsy/mcp/state",
            McpState(state="centre_marker", reason="the centre's own roof", roof="stopped").to_json(),
        )
        # north's MCP closes and its weather turns unsafe: the page shows it within seconds, long
        # before its 30 s status poll, through the site broker, the bridge and the central broker.
        site.mcp.publish(
            "obsy/mcp/state",
            McpState(state="closing", reason="north closes", roof="closing").to_json(),
        )
        site.mcp.publish(
            "obsy/weather/safety",
            SafetyVerdict(safe=False, timestamp=datetime.now(UTC)).to_json(),
        )
        expect(page.locator("#mcp-roof")).to_have_text("closing", timeout=8_000)
        expect(page.locator("#mcp-reason")).to_have_text("north closes")
        expect(page.locator("#safety-verdict")).to_have_text("unsafe", timeout=8_000)
        expect(page.locator("#mcp-state")).not_to_have_text("centre_marker")

        # The feed itself, as a script reads it: north's topics relative to its prefix, none of this site's.
        lines: list[str] = []
        with web.login("vera") as client:

            def follow() -> None:
                try:
                    with client.stream("GET", "/api/v1/live?site=north", timeout=30) as reply:
                        for line in reply.iter_lines():
                            lines.append(line)
                            if "north_again" in line:
                                return
                except Exception:
                    return

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            web.wait_until(lambda: _followers(web, "north") == 2, 15)
            centre.publish("obsy/mcp/state", McpState(state="centre_again").to_json())
            site.mcp.publish("obsy/mcp/state", McpState(state="north_again", roof="closed").to_json())
            reader.join(20)
        data = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
        states = [m["payload"]["state"] for m in data if m["topic"] == "mcp/state"]
        assert states == ["north_again"], data
        assert all(not m["topic"].startswith(("sites/", "obsy/")) for m in data), data
        expect(page.locator("#mcp-roof")).to_have_text("closed", timeout=8_000)

        # The site's own page (/sites/north) follows it too: its roof changes without the 30 s reload.
        site_page = page.context.new_page()
        site_page.goto(f"{web.url}/sites/north")
        expect(site_page.locator("#site-roof")).to_have_text("closed", timeout=15_000)
        web.wait_until(lambda: _followers(web, "north") == 2, 15)
        site.mcp.publish("obsy/mcp/state", McpState(state="opening", roof="opening").to_json())
        expect(site_page.locator("#site-roof")).to_have_text("opening", timeout=8_000)
        expect(page.locator("#mcp-roof")).to_have_text("opening", timeout=8_000)

        # The site's broker goes: its bridge's link state (the central broker's Last Will of the bridge)
        # reaches the page, which says the site is unreachable.
        site.broker.stop()
        expect(page.locator("#live-status")).to_contain_text("unreachable since", timeout=60_000)
        page.screenshot(path=tmp_path / "site-live.png", full_page=True)
    finally:
        centre.close()
        web.stop()
