"""Three sites, each on its own Mosquitto, bridged to a central Mosquitto where one web service stores them.

The bridges are written by deploy/make_bridge.py (plain TCP on loopback here; TLS in a real
deployment). Site ``b``'s uplink runs through a TCP proxy that the test cuts: the centre shows
the site unreachable, and what the site published meanwhile arrives exactly once when the link
returns (the bridge's persistent session, QoS 1).
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from obsy.messages import Event, McpState, SafetyVerdict
from obsy_web.db import make_engine, models
from tests.support.indi_proxy import IndiProxy
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SITES = ("a", "b", "c")


def make_bridge():
    spec = importlib.util.spec_from_file_location("make_bridge", ROOT / "deploy" / "make_bridge.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_bridge"] = module
    spec.loader.exec_module(module)
    return module


def events_by_site(engine) -> dict[str, int]:
    table = models.EventRecord
    with engine.connect() as connection:
        rows = connection.execute(select(table.site, func.count()).group_by(table.site)).all()
    return dict(rows)


def test_three_bridged_sites_are_stored_apart_and_a_cut_site_is_unreachable_then_caught_up(tmp_path):
    generator = make_bridge()
    (tmp_path / "central").mkdir()
    central = MosquittoBroker(tmp_path / "central")
    central.start()
    proxy = IndiProxy("127.0.0.1", central.port)  # site b's uplink, which the test cuts
    proxy.start()
    brokers: dict[str, MosquittoBroker] = {}
    watchers: dict[str, Watcher] = {}
    web = None
    try:
        for site in SITES:
            workdir = tmp_path / site
            workdir.mkdir()
            port = proxy.port if site == "b" else central.port
            out = workdir / "bridge"
            argv = ["--site", site, "--central-host", "127.0.0.1", "--central-port", str(port), "--plain"]
            assert generator.main([*argv, "--out", str(out)]) == 0
            conf = (out / "bridge.conf").read_text()
            assert "cleansession false" in conf and "notifications true" in conf
            assert "max_queued_messages 200000" in conf
            assert "topic mcp/roof/set in 1 obsy/ sites/" + site + "/" in conf
            brokers[site] = MosquittoBroker(workdir, extra_config=conf)
            brokers[site].start()
            watchers[site] = Watcher(brokers[site].port, ["obsy/mcp/roof/set"])
        database = f"sqlite:///{tmp_path / 'central.sqlite3'}"
        (tmp_path / "web").mkdir()
        sites = [{"prefix": f"sites/{site}"} for site in SITES]
        web = RunningWeb(tmp_path / "web", central, database, sites=sites).start(timeout=60)
        web.add_user("viewer", "viewer")
        web.add_user("otto", "operator")
        engine = make_engine(database)
        client = web.login("viewer")

        def fleet() -> dict[str, dict]:
            return {entry["id"]: entry for entry in client.get("/api/v1/fleet").json()["items"]}

        # Every bridge is up: the centre sees each link.
        web.wait_until(lambda: all(fleet()[site]["reachable"] for site in SITES), timeout=60)
        now = datetime.now(UTC)
        for index, site in enumerate(SITES):
            watcher = watchers[site]
            watcher.publish("obsy/weather/safety", SafetyVerdict(safe=index != 1, timestamp=now).to_json(), retain=True)
            watcher.publish(
                "obsy/mcp/state", McpState(state="idle", roof="closed", timestamp=now).to_json(), retain=True
            )
            watcher.publish("obsy/mcp/availability", b"online", retain=True)
            for number in range(5):
                event = Event(service="mcp", kind=f"tick_{number}", timestamp=now + timedelta(seconds=number))
                watcher.publish("obsy/mcp/events", event.to_json())
        # Stored keyed by site: the same verdict time and the same events at each site are three rows.
        web.wait_until(lambda: events_by_site(engine) == {"a": 5, "b": 5, "c": 5}, timeout=60)
        with engine.connect() as connection:
            verdicts = connection.execute(select(models.SafetyVerdictRecord.site, models.SafetyVerdictRecord.safe))
            assert sorted(verdicts) == [("a", True), ("b", False), ("c", True)]
        overview = web.wait_until(lambda: (f := fleet()) and f["b"]["verdict"] == "unsafe" and f, timeout=30)
        assert overview["a"]["verdict"] == "safe" and overview["a"]["roof"] == "closed"
        assert overview["a"]["availability"] == {"mcp": "online"}
        assert overview["obsy"]["local"] is True  # the centre's own site

        # The centre may close a site's roof: the command comes down its bridge.
        watchers["a"].messages.clear()
        central_watcher = Watcher(central.port, ["sites/a/mcp/roof/set"])
        central_watcher.publish("sites/a/mcp/roof/set", b"CLOSE")
        watchers["a"].wait_payload("obsy/mcp/roof/set", b"CLOSE", timeout=30)
        central_watcher.close()

        # Cut site b's uplink: the centre shows it unreachable, never safe or unsafe.
        proxy.stop()
        cut = web.wait_until(lambda: (f := fleet()) and not f["b"]["reachable"] and f["b"], timeout=60)
        assert cut["verdict"] == "unreachable" and cut["roof"] is None
        assert cut["status"].startswith("unreachable since ")
        assert cut["last_known"]["safe"] is False
        status = client.get("/api/v1/status", params={"site": "b"}).json()
        assert status["site"]["status"].startswith("unreachable since ") and status["observatory"]["safety"] is None
        assert fleet()["a"]["reachable"] and fleet()["c"]["reachable"]
        # Site b goes on alone; what it publishes meanwhile is queued for the bridge.
        later = now + timedelta(minutes=1)
        for number in range(50):
            event = Event(service="mcp", kind=f"offline_{number}", timestamp=later + timedelta(seconds=number))
            watchers["b"].publish("obsy/mcp/events", event.to_json())
        watchers["b"].publish(
            "obsy/mcp/state", McpState(state="closing", roof="closed", timestamp=later).to_json(), retain=True
        )
        assert events_by_site(engine)["b"] == 5
        # The link returns on the same port: everything arrives, once.
        returned = IndiProxy("127.0.0.1", central.port)
        returned.port = proxy.port
        returned.start()
        proxy = returned
        web.wait_until(lambda: events_by_site(engine).get("b") == 55, timeout=90, interval=0.5)
        web.wait_until(lambda: fleet()["b"]["reachable"], timeout=30)
        assert fleet()["b"]["last_known"]["mcp_state"] == "closing"
        assert events_by_site(engine) == {"a": 5, "b": 55, "c": 5}
        engine.dispose()
    finally:
        if web is not None:
            web.stop()
        for watcher in watchers.values():
            watcher.close()
        for broker in brokers.values():
            broker.stop()
        proxy.stop()
        central.stop()
