"""Accepted lights counted as acquired: the imaging service's retained summary reaches the web service.

The web service (SQLite, real Mosquitto) takes ``<p>/imaging/acquired`` as the imaging service
publishes it, raises the matching exposure plans' ``acquired`` (target name without case or
blanks, filter by name, exposure within 1 %) and republishes ``<p>/web/targets``.
"""

from __future__ import annotations

import json

import pytest

from obsy.messages import AcquiredLights, ImagingAcquired
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = pytest.mark.integration

ACQUIRED = "obsy/imaging/acquired"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web-acquired")
    broker = MosquittoBroker(workdir)
    broker.start()
    server = RunningWeb(workdir, broker, f"sqlite:///{workdir / 'obsy.sqlite3'}").start()
    server.broker = broker
    server.add_user("otto", "operator")
    try:
        yield server
    finally:
        server.stop()
        broker.stop()


def summary(*rows: tuple[str, str | None, float, int]) -> bytes:
    lights = [AcquiredLights(target=t, filter=f, exposure_s=e, accepted=n) for t, f, e, n in rows]
    return ImagingAcquired(lights=lights).model_dump_json().encode()


def plans_published(bus: Watcher, name: str, expected: list[int]) -> None:
    def check(messages):
        retained = [m for m in messages if m.topic == "obsy/web/targets"]
        if not retained:
            return False
        targets = {t["name"]: t for t in json.loads(retained[-1].payload)["targets"]}
        return name in targets and [p["acquired"] for p in targets[name]["exposure_plans"]] == expected

    bus.wait_for(check)


def test_accepted_lights_count_per_filter_and_a_hand_value_above_the_count_stays(web, bus):
    with web.login("otto") as operator:
        created = operator.post(
            "/api/v1/targets",
            json={
                "name": "M 42",
                "ra_deg": 83.82,
                "dec_deg": -5.39,
                "exposure_plans": [
                    {"filter": "Ha", "exposure_s": 300, "count": 20},
                    {"filter": "OIII", "exposure_s": 300, "count": 20},
                    {"filter": "L", "exposure_s": 60, "count": 50, "acquired": 40},
                ],
            },
        )
        assert created.status_code == 201, created.text
        target_id = created.json()["id"]

        # As the OBJECT header gives it ("m42"), Ha at 300.2 s (within 1 %), OIII apart; a 120 s
        # group matches no plan; L counted 12 < 40 typed by hand, which stays.
        bus.publish(
            ACQUIRED,
            summary(("m42", "Ha", 300.2, 3), ("M42", "OIII", 300, 1), ("M42", "Ha", 120, 9), ("M 42", "L", 60, 12)),
            retain=True,
        )
        plans_published(bus, "M 42", [3, 1, 40])
        plans = web.wait_until(lambda: _plans_if(operator, target_id, [3, 1, 40]))
        assert [p["filter"] for p in plans] == ["Ha", "OIII", "L"]

        # More accepted Ha lights arrive: the count rises; OIII unchanged.
        bus.publish(
            ACQUIRED, summary(("m42", "Ha", 300.2, 5), ("M42", "OIII", 300, 1), ("M 42", "L", 60, 41)), retain=True
        )
        plans_published(bus, "M 42", [5, 1, 41])
        web.wait_until(lambda: _plans_if(operator, target_id, [5, 1, 41]))

        # A hand edit below the count is raised back to the count at once (acquired = max(hand, counted)).
        edited = created.json()
        body = {k: edited[k] for k in ("name", "ra_deg", "dec_deg", "priority", "enabled", "constraints", "notes")}
        body["exposure_plans"] = [
            {"filter": "Ha", "exposure_s": 300, "count": 20, "acquired": 0},
            {"filter": "OIII", "exposure_s": 300, "count": 20, "acquired": 7},
            {"filter": "L", "exposure_s": 60, "count": 50, "acquired": 0},
        ]
        reply = operator.put(f"/api/v1/targets/{target_id}", json=body)
        assert reply.status_code == 200, reply.text
        assert [p["acquired"] for p in reply.json()["exposure_plans"]] == [5, 7, 41]


def test_unknown_targets_and_malformed_summaries_are_ignored_with_a_reason(web, bus):
    with web.login("otto") as operator:
        created = operator.post(
            "/api/v1/targets",
            json={
                "name": "NGC 7000",
                "ra_deg": 314.8,
                "dec_deg": 44.3,
                "exposure_plans": [{"filter": "Ha", "exposure_s": 600, "count": 10}],
            },
        )
        assert created.status_code == 201, created.text
        target_id = created.json()["id"]
        bus.publish(ACQUIRED, b"{not json", retain=True)
        bus.publish(ACQUIRED, b'{"lights": [{"target": "NGC 7000", "exposure_s": -1, "accepted": 3}]}', retain=True)
        bus.publish(ACQUIRED, summary(("Nowhere Nebula", "Ha", 600, 4), ("ngc7000", "Ha", 600, 2)), retain=True)
        web.wait_until(lambda: _plans_if(operator, target_id, [2]))  # the service took the good one after the bad
        assert all(t["name"] != "Nowhere Nebula" for t in operator.get("/api/v1/targets").json())


def _plans_if(client, target_id: str, expected: list[int]):
    plans = client.get(f"/api/v1/targets/{target_id}").json()["exposure_plans"]
    return plans if [p["acquired"] for p in plans] == expected else None
