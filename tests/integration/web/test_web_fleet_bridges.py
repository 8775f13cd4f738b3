"""Three sites, each on its own Mosquitto, bridged to a central Mosquitto where one web service stores them.

The bridges are written by deploy/make_bridge.py (plain TCP on loopback here; TLS in a real
deployment). Site ``b``'s uplink runs through a TCP proxy that the test cuts: the centre shows
the site unreachable, and what the site published meanwhile arrives exactly once when the link
returns (the bridge's persistent session, QoS 1).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from obsy.messages import Event, McpState, SafetyVerdict
from obsy_web.db import make_engine, models
from tests.integration.test_bus_security import make_certificates
from tests.support.indi_proxy import IndiProxy
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.web_databases import database_url  # noqa: F401 (fixture)
from tests.support.web_server import RunningWeb

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
SITES = ("a", "b", "c")
#: Events site b publishes while cut off: more than Mosquitto's default queue of 1,000 would keep.
OFFLINE = 1500


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


def test_three_bridged_sites_are_stored_apart_and_a_cut_site_is_unreachable_then_caught_up(
    tmp_path,
    database_url,  # noqa: F811
):
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
            assert f"topic roof/set in 1 obsy/mcp/remote/ sites/{site}/mcp/" in conf
            brokers[site] = MosquittoBroker(workdir, extra_config=conf)
            # Only the generated queue size counts (the test broker's own would hide a missing one).
            settings = brokers[site].config_path.read_text().replace("max_queued_messages 100000\n", "")
            brokers[site].config_path.write_text(settings)
            brokers[site].start()
            watchers[site] = Watcher(brokers[site].port, ["obsy/mcp/remote/roof/set"])
        database = database_url  # the central store: SQLite and Postgres
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
        web.wait_until(lambda: events_by_site(engine) == {"a": 5, "b": 5, "c": 5}, timeout=60)  # before the answer
        with engine.connect() as connection:
            verdicts = connection.execute(select(models.SafetyVerdictRecord.site, models.SafetyVerdictRecord.safe))
            assert sorted(verdicts) == [("a", True), ("b", False), ("c", True)]
        overview = web.wait_until(lambda: (f := fleet()) and f["b"]["verdict"] == "unsafe" and f, timeout=30)
        assert overview["a"]["verdict"] == "safe" and overview["a"]["roof"] == "closed"
        assert overview["a"]["availability"] == {"mcp": "online"}
        assert overview["obsy"]["local"] is True  # the centre's own site
        page = client.get("/fleet")
        assert page.status_code == 200 and 'href="/fleet"' in page.text and "/api/v1/fleet" in page.text

        # An operator at the centre may close a site's roof: the command comes down its bridge to
        # the MCP's remote topic, and the site's answer comes back up (site a's MCP played here).
        watchers["a"].messages.clear()

        def site_mcp_answers() -> None:
            received = watchers["a"].wait_for(lambda m: any(x.topic == "obsy/mcp/remote/roof/set" for x in m), 30)
            command = json.loads(next(m for m in received if m.topic == "obsy/mcp/remote/roof/set").payload)
            answer = Event(
                service="mcp",
                kind="command_accepted",
                data={"command": {"thing": "roof", "value": command["value"]}, "origin": command["origin"]},
            )
            watchers["a"].publish("obsy/mcp/events", answer.to_json())

        mcp = threading.Thread(target=site_mcp_answers)
        mcp.start()
        operator = web.login("otto")
        reply = operator.post("/api/v1/fleet/a/commands/roof", json={"action": "CLOSE"})
        mcp.join(30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["accepted"] is True and reply.json()["answer_topic"] == "mcp/events"
        origin = reply.json()["answer"]["data"]["origin"]  # what the command carried down
        assert (origin["kind"], origin["user"], origin["role"]) == ("web", "otto", "operator")
        # Opening stays the site's decision; viewers send nothing; unknown sites are named.
        assert operator.post("/api/v1/fleet/a/commands/roof", json={"action": "OPEN"}).status_code == 422
        assert operator.post("/api/v1/fleet/a/commands/night", json={"action": "START"}).status_code == 422
        assert client.post("/api/v1/fleet/a/commands/roof", json={"action": "CLOSE"}).status_code == 403
        assert operator.post("/api/v1/fleet/nowhere/commands/roof", json={"action": "CLOSE"}).status_code == 404

        # Cut site b's uplink: the centre shows it unreachable, never safe or unsafe.
        proxy.stop()
        cut = web.wait_until(lambda: (f := fleet()) and not f["b"]["reachable"] and f["b"], timeout=60)
        assert cut["verdict"] == "unreachable" and cut["roof"] is None
        assert cut["status"].startswith("unreachable since ")
        assert cut["last_known"]["safe"] is False
        status = client.get("/api/v1/status", params={"site": "b"}).json()
        assert status["site"]["status"].startswith("unreachable since ") and status["observatory"]["safety"] is None
        assert fleet()["a"]["reachable"] and fleet()["c"]["reachable"]
        refused = operator.post("/api/v1/fleet/b/commands/roof", json={"action": "CLOSE"})
        assert refused.status_code == 409 and "unreachable since" in refused.json()["detail"]
        # Site b goes on alone; what it publishes meanwhile is queued for the bridge.
        later = now + timedelta(minutes=1)
        for number in range(OFFLINE):
            event = Event(service="mcp", kind=f"offline_{number}", timestamp=later + timedelta(milliseconds=number))
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
        web.wait_until(lambda: events_by_site(engine).get("b") == 5 + OFFLINE, timeout=120, interval=0.5)
        web.wait_until(lambda: fleet()["b"]["reachable"], timeout=30)
        assert fleet()["b"]["last_known"]["mcp_state"] == "closing"
        # a: its MCP's answer too; this site: the audit record of the command its operator sent
        assert events_by_site(engine) == {"a": 6, "b": 5 + OFFLINE, "c": 5, "obsy": 1}
        # Each site's history apart, through the API.
        window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
        assert client.get("/api/v1/events", params={**window, "site": "b"}).json()["total"] == 5 + OFFLINE
        assert client.get("/api/v1/events", params={**window, "site": "a"}).json()["total"] == 6
        safety = client.get("/api/v1/safety/history", params={**window, "site": "b"}).json()["items"]
        assert [item["safe"] for item in safety] == [False]
        assert client.get("/api/v1/events", params=window).json()["total"] < 5  # this site's own: none of theirs
        assert client.get("/api/v1/events", params={"site": "nowhere"}).status_code == 404
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


class Client:
    """A paho client with a user name, recording what arrives on its subscriptions."""

    def __init__(self, port: int, username: str, password: str, topics: list[str], ca: Path | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.received: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{username}")
        self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.on_message = lambda client, userdata, message: self.received.append(
            (message.topic, bytes(message.payload))
        )
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if topics:
            self.client.subscribe([(topic, 1) for topic in topics])
            assert self._subscribed.wait(10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def wait_for(self, topic: str, payload: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (topic, payload) not in self.received:
            assert time.monotonic() < deadline, f"{topic} {payload!r} did not arrive; got {self.received[-5:]}"
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_generated_acl_confines_a_site_to_its_prefix_and_the_centre_to_closing_commands(tmp_path):
    """The bridge over TLS with its own user, as generated for a real deployment."""
    generator = make_bridge()
    (tmp_path / "central").mkdir()
    ca, cert, key = make_certificates(tmp_path / "central")
    central = MosquittoBroker(tmp_path / "central")
    out = tmp_path / "north" / "bridge"
    argv = ["--site", "north", "--central-host", "127.0.0.1", "--central-port", str(central.port), "--cafile", str(ca)]
    assert generator.main([*argv, "--out", str(out)]) == 0
    bridge_password = (out / "mqtt_bridge-north").read_text().strip()
    assert f"bridge_cafile {ca}" in (out / "bridge.conf").read_text()
    passwd = tmp_path / "central" / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "bridge-north", bridge_password], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "web", "web-secret"], check=True)
    acl = tmp_path / "central" / "acl"
    # The central web user's own block (as in deploy/mosquitto/acl), then the generated lines.
    acl.write_text("user web\ntopic write obsy/web/#\ntopic read obsy/#\n\n" + (out / "central.acl").read_text())
    settings = central.config_path.read_text().replace("allow_anonymous true", "allow_anonymous false")
    tls = f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"  # the central listener speaks TLS only
    central.config_path.write_text(settings + f"password_file {passwd}\nacl_file {acl}\n" + tls)
    central.start()
    (tmp_path / "north").mkdir(exist_ok=True)
    site = MosquittoBroker(tmp_path / "north", extra_config=(out / "bridge.conf").read_text())
    clients: list[Client] = []
    try:
        web = Client(central.port, "web", "web-secret", ["sites/#", "$SYS/broker/connection/+/state"], ca)
        clients.append(web)
        site.start()
        web.wait_for("$SYS/broker/connection/obsy-bridge-north/state", b"1")  # the bridge may say it
        local = Watcher(site.port, ["obsy/#"])
        try:
            local.publish("obsy/weather/events", b'{"kind": "hello"}')
            web.wait_for("sites/north/weather/events", b'{"kind": "hello"}')
            # The centre may close the roof and abort the night...
            web.publish("sites/north/mcp/roof/set", b"CLOSE")
            web.publish("sites/north/mcp/night/set", b"ABORT")
            local.wait_payload("obsy/mcp/remote/roof/set", b"CLOSE", timeout=30)
            local.wait_payload("obsy/mcp/remote/night/set", b"ABORT", timeout=30)
            # ...but not change the mode (nor anything else): the broker drops it.
            web.publish("sites/north/mcp/mode/set", b"manual")
            web.publish("sites/north/mcp/roof/set", b"CLOSE")  # a marker after it
            local.wait_for(lambda messages: len(local.on("obsy/mcp/remote/roof/set")) >= 2, timeout=30)
            assert not [m for m in local.messages if "mode" in m.topic]
        finally:
            local.close()
        # A site's user publishes only under its own prefix: another site's tree is refused.
        intruder = Client(central.port, "bridge-north", bridge_password, [], ca)
        clients.append(intruder)
        intruder.publish("sites/south/weather/events", b"forged")
        intruder.publish("sites/north/weather/events", b"marker")
        web.wait_for("sites/north/weather/events", b"marker")
        assert ("sites/south/weather/events", b"forged") not in web.received
    finally:
        for client in clients:
            client.close()
        site.stop()
        central.stop()
