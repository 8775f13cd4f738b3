"""A bridged site's page at the centre (``/sites/{site}``), and who may open it."""

from __future__ import annotations

import pytest

from tests.support.web_server import web_on

pytestmark = pytest.mark.integration
SITES = [{"prefix": "sites/north", "name": "North roof"}, {"prefix": "sites/south"}]


def test_each_sites_page_for_those_who_may_see_it(tmp_path):
    with web_on("sqlite", tmp_path, {"otto": "operator", "vera": "viewer"}, sites=SITES) as web:
        web.add_user("northop", "operator", sites=["north"])
        with web.client() as anonymous:
            away = anonymous.get("/sites/north", follow_redirects=False)
            assert away.status_code == 303 and away.headers["location"] == "/login?next=/sites/north"
        with web.login("otto") as otto:
            page = otto.get("/sites/north")
            assert page.status_code == 200
            assert "North roof" in page.text and 'data-site="north"' in page.text
            assert 'id="site-commands"' in page.text  # an operator, a bridged site
            own = otto.get("/sites/obsy")
            assert own.status_code == 200 and 'id="site-commands"' not in own.text  # this site: its own pages
            missing = otto.get("/sites/nowhere")
            assert missing.status_code == 404 and "north" in missing.json()["detail"]
            assert otto.get("/sites/NOT%20A%20SITE").status_code == 422
            fleet = otto.get("/fleet")
            assert 'src="/static/fleet.js"' in fleet.text and "Commands" in fleet.text
            # No picture has arrived from north: the overview offers none.
            north = otto.get("/api/v1/fleet/north").json()
            assert north["allsky_picture"] is None
        with web.login("vera") as vera:
            assert 'id="site-commands"' not in vera.get("/sites/north").text  # a viewer: no buttons
            assert "Commands" not in vera.get("/fleet").text
        with web.login("northop") as northop:
            assert northop.get("/sites/north").status_code == 200
            refused = northop.get("/sites/south")
            assert refused.status_code == 403 and "north" in refused.json()["detail"]
            assert northop.get("/sites/obsy").status_code == 403
