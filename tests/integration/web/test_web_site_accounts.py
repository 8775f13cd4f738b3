"""Accounts limited to some sites of a fleet: they see and act on those sites only.

The web service runs with two bridged sites configured (no bridge is up, so both are
unreachable: a command that passes the site check is then refused with 409, which tells it
apart from the 403 of the site check).
"""

from __future__ import annotations

import pytest

from tests.support.web_server import web_on

pytestmark = pytest.mark.integration
SITES = [{"prefix": "sites/north"}, {"prefix": "sites/south"}]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_an_account_limited_to_a_site_sees_and_commands_only_that_site(tmp_path, database):
    users = {"admin": "admin", "everyone": "operator"}
    with web_on(database, tmp_path, users, sites=SITES) as web:
        web.add_user("northop", "operator", sites=["north"])
        north = web.login("northop")
        me = north.get("/api/v1/auth/me").json()
        assert me["sites"] == ["north"]

        # The fleet overview lists only its site; an unlimited account sees every site.
        assert [s["id"] for s in north.get("/api/v1/fleet").json()["items"]] == ["north"]
        everyone = web.login("everyone")
        assert {s["id"] for s in everyone.get("/api/v1/fleet").json()["items"]} == {"obsy", "north", "south"}

        # Its own site's history, not another's, and not this (central) site's routes.
        assert north.get("/api/v1/events", params={"site": "north"}).status_code == 200
        refused = north.get("/api/v1/events", params={"site": "south"})
        assert refused.status_code == 403 and "north" in refused.json()["detail"]
        assert "south" in refused.json()["detail"]
        assert north.get("/api/v1/events").status_code == 403  # no site given: this site's
        assert north.get("/api/v1/status").status_code == 403
        assert north.get("/api/v1/status", params={"site": "north"}).json()["site"]["id"] == "north"
        assert north.get("/api/v1/status", params={"site": "south"}).status_code == 403
        # ... and a site= on a route that has no site filter does not open this site's data.
        assert north.get("/api/v1/targets", params={"site": "north"}).status_code == 403
        assert north.get("/api/v1/imaging/masters", params={"site": "north"}).status_code == 200  # takes a site

        # Commands: its site passes the site check (then 409: the site is unreachable), others do not.
        assert north.post("/api/v1/fleet/north/commands/roof", json={"action": "CLOSE"}).status_code == 409
        assert north.post("/api/v1/fleet/south/commands/roof", json={"action": "CLOSE"}).status_code == 403
        assert north.post("/api/v1/commands/roof", json={"action": "OPEN"}).status_code == 403
        assert everyone.post("/api/v1/fleet/south/commands/roof", json={"action": "CLOSE"}).status_code == 409

        # The same through an API token.
        with web.token_client("northop") as script:
            assert script.get("/api/v1/events", params={"site": "south"}).status_code == 403
            assert script.get("/api/v1/events", params={"site": "north"}).status_code == 200

        # An administrator widens and narrows the account; a bad site id is named.
        admin = web.login("admin")
        user_id = next(u["id"] for u in admin.get("/api/v1/users").json() if u["username"] == "northop")
        bad = admin.patch(f"/api/v1/users/{user_id}", json={"sites": ["North Site"]})
        assert bad.status_code == 422 and "North Site" in bad.json()["detail"]
        assert admin.patch(f"/api/v1/users/{user_id}", json={"sites": None}).json()["sites"] is None
        assert north.get("/api/v1/status").status_code == 200
        assert admin.patch(f"/api/v1/users/{user_id}", json={"sites": ["south"]}).json()["sites"] == ["south"]
        assert north.get("/api/v1/events", params={"site": "north"}).status_code == 403
        assert north.get("/api/v1/events", params={"site": "south"}).status_code == 200
        created = admin.post(
            "/api/v1/users", json={"username": "southview", "password": "a long password", "sites": ["south"]}
        )
        assert created.status_code == 201 and created.json()["sites"] == ["south"]
