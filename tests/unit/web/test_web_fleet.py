"""Several sites on one web service: site ids, routing by prefix, link state, the fleet overview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from obsy.config import ObsyConfig
from obsy.messages import McpState, SafetyVerdict
from obsy.topics import Topics
from obsy_web.fleet import Fleet, sites_of
from obsy_web.ingest.ingestor import Ingestor
from obsy_web.ingest.records import Incoming

SITE = {"latitude": 48.2, "longitude": 16.4}
NOW = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


def config(**values) -> ObsyConfig:
    return ObsyConfig.model_validate({"site": SITE, **values})


def test_the_site_id_comes_from_the_config_or_the_prefix():
    assert config().site_id() == "obsy"
    assert config(broker={"prefix": "club/North"}).site_id() == "club-north"
    assert config(site={**SITE, "id": "vienna"}).site_id() == "vienna"
    sites = sites_of(config(web={"sites": [{"prefix": "sites/north"}, {"prefix": "far/away", "id": "south"}]}))
    assert [(s.id, s.prefix, s.bridge) for s in sites] == [
        ("obsy", "obsy", None),
        ("north", "sites/north", "obsy-bridge-north"),
        ("south", "far/away", "obsy-bridge-south"),
    ]


@pytest.mark.parametrize(
    "sites",
    [
        [{"prefix": "obsy/north"}],  # inside this site's tree
        [{"prefix": "sites/north"}, {"prefix": "sites/north/b"}],
        [{"prefix": "sites/obsy"}],  # the same id as this site
        [{"prefix": "a/north"}, {"prefix": "b/north"}],
    ],
)
def test_sites_that_would_collide_are_refused(sites):
    with pytest.raises(ValueError):
        config(web={"sites": sites})


def test_rows_carry_the_site_of_their_prefix_and_change_detection_is_per_site():
    ingestor = Ingestor(None, Topics("obsy"), site="home", sites=[("north", Topics("sites/north"))])  # type: ignore[arg-type]
    verdict = SafetyVerdict(safe=False).to_json()
    home = ingestor.router_for("obsy/weather/safety").rows_for(Incoming("obsy/weather/safety", verdict, NOW))
    north = ingestor.router_for("sites/north/weather/safety")
    (row,) = north.rows_for(Incoming("sites/north/weather/safety", verdict, NOW))
    assert home[0].values["site"] == "home" and row.values["site"] == "north"
    assert home[0].change_key != row.change_key  # one site's verdict never hides the other's
    (availability,) = north.rows_for(Incoming("sites/north/mcp/availability", b"online", NOW))
    assert availability.values["site"] == "north" and availability.change_key == ("north", "availability", "mcp")


def test_an_unreachable_site_is_never_safe_or_unsafe():
    fleet = Fleet(sites_of(config(web={"sites": [{"prefix": "sites/north"}]})))
    north = fleet.sites[1]
    assert fleet.topic_filters() == ["sites/north/#", "$SYS/broker/connection/obsy-bridge-north/state"]
    fleet.update("sites/north/weather/safety", SafetyVerdict(safe=True, timestamp=NOW).to_json(), NOW)
    fleet.update("sites/north/mcp/state", McpState(state="observing", roof="open").to_json(), NOW)
    fleet.update("sites/north/mcp/availability", b"online", NOW)
    # No link state seen yet: not reachable, whatever the site said.
    unknown = fleet.overview(north, NOW)
    assert unknown["reachable"] is False and unknown["link"] == "unknown" and unknown["verdict"] == "unreachable"
    fleet.update("$SYS/broker/connection/obsy-bridge-north/state", b"1", NOW)
    up = fleet.overview(north, NOW)
    assert (up["reachable"], up["verdict"], up["roof"], up["availability"]) == (True, "safe", "open", {"mcp": "online"})
    cut = NOW + timedelta(minutes=5)
    fleet.update("$SYS/broker/connection/obsy-bridge-north/state", b"0", cut)
    down = fleet.overview(north, cut)
    assert down["reachable"] is False and down["status"] == "unreachable since " + cut.isoformat(timespec="seconds")
    assert (down["verdict"], down["roof"], down["availability"]) == ("unreachable", None, {})
    assert down["last_known"]["roof"] == "open" and down["last_known"]["safe"] is True
    # A verdict far older than the site's republishing is stale, not safe.
    fleet.update("$SYS/broker/connection/obsy-bridge-north/state", b"1", cut)
    assert fleet.overview(north, NOW + timedelta(hours=1))["verdict"] == "stale"
    # This site has no bridge: always reachable.
    assert fleet.overview(fleet.local, NOW)["reachable"] is True


def test_the_live_feed_gives_each_listener_its_own_sites_messages_with_relative_topics():
    import asyncio

    from obsy_web.live import LiveHub

    hub = LiveHub(Topics("obsy"))

    async def run() -> tuple[list, list]:
        local, north = hub.listen(keepalive_s=5), hub.listen(keepalive_s=5, site="north")
        first_local, first_north = asyncio.ensure_future(anext(local)), asyncio.ensure_future(anext(north))
        await asyncio.sleep(0)  # both listening
        hub.publish("sites/north/mcp/state", b'{"state": "north"}', site="north", prefix="sites/north")
        hub.publish("obsy/mcp/state", b'{"state": "here"}')
        hub.send("link", {"id": "north", "reachable": False}, site="north")
        got_local = [await first_local]
        got_north = [await first_north, await anext(north)]
        hub.close()
        return got_local, got_north

    got_local, got_north = asyncio.run(run())
    assert got_local == [{"topic": "mcp/state", "payload": {"state": "here"}}]
    assert got_north == [
        {"topic": "mcp/state", "payload": {"state": "north"}},
        {"topic": "link", "payload": {"id": "north", "reachable": False}},
    ]
