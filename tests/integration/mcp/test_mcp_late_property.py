"""A device step sent while the driver is still defining its properties waits for the property.

Drivers define their properties one by one after connecting. The MCP's first step after a start
(stop the mount before closing) can come before the mount's TELESCOPE_ABORT_MOTION is known to its
client; the step used to fail at once, three times, into an alarm. It now waits for the property
(at most the devices' connect timeout), and still fails with its name when it never comes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from obsy.indi import IndiClient
from obsy_mcp.config import McpDevicesConfig
from obsy_mcp.devices import DeviceError, Mount
from tests.support.indi_late_proxy import LateDefinitionProxy
from tests.support.indiserver import TELESCOPE, IndiServer, require_indi

pytestmark = pytest.mark.integration

pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(["indi_simulator_telescope"])

HELD = "TELESCOPE_ABORT_MOTION"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiServer]:
    with IndiServer(tmp_path_factory.mktemp("indi"), ["indi_simulator_telescope"]) as indiserver:
        yield indiserver


def connected_mount(proxy: LateDefinitionProxy, connect_timeout: float) -> tuple[IndiClient, Mount]:
    client = IndiClient(proxy.host, proxy.port, timeout=10.0)
    client.connect(timeout=10.0)
    mount = Mount(client, TELESCOPE, McpDevicesConfig(connect_timeout=connect_timeout), on_send=None)
    mount.connect()
    return client, mount


def test_an_abort_sent_before_the_driver_defines_it_waits_for_the_property(server: IndiServer) -> None:
    with LateDefinitionProxy(server.host, server.port, HELD, release_after=3.0) as proxy:
        client, mount = connected_mount(proxy, connect_timeout=15.0)
        try:
            assert client.get_property(TELESCOPE, "TELESCOPE_PARK") is not None
            mount.abort()  # the property comes 3 s after the driver sent it: the step waits, then succeeds
            assert proxy.held and proxy.released, "the proxy never held the abort property back"
            assert client.get_property(TELESCOPE, HELD).state in ("Ok", "Idle")
        finally:
            client.disconnect()


def test_an_abort_whose_property_never_comes_fails_naming_it(server: IndiServer) -> None:
    with LateDefinitionProxy(server.host, server.port, HELD, release_after=None) as proxy:
        client, mount = connected_mount(proxy, connect_timeout=1.0)
        try:
            with pytest.raises(DeviceError, match=HELD):
                mount.abort()
        finally:
            client.disconnect()
