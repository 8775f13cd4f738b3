"""Frames from the real INDI CCD simulator go through clouddetect without error."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from obsy.indi import IndiClient
from obsy_clouddetect.classifier.demo import make_demo_model
from tests.integration.clouddetect.test_clouddetect_service import HEALTH, Running, send_and_wait, states
from tests.support.clouddetect_frames import DAY, NIGHT, FrameFactory
from tests.support.indiserver import CCD, IndiServer, require_indi

pytestmark = pytest.mark.integration

pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(["indi_simulator_ccd"])


@pytest.fixture(scope="module")
def ccd_frames(tmp_path_factory) -> Iterator[list[bytes]]:
    """Two FITS frames exposed by indi_simulator_ccd (full size, then binned 2 x 2)."""
    server = IndiServer(tmp_path_factory.mktemp("indiserver"), ["indi_simulator_ccd"])
    server.start()
    try:
        with IndiClient.from_config(server.config(), timeout=10.0) as indi:
            indi.connect_device(CCD)
            indi.wait_property(CCD, "CCD_EXPOSURE")
            indi.wait_property(CCD, "CCD1")
            indi.enable_blobs(CCD)
            frames = []
            for binning in (1, 2):
                indi.clear_blobs()
                indi.set_number(CCD, "CCD_BINNING", {"HOR_BIN": binning, "VER_BIN": binning})
                indi.set_number(CCD, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 1.0}, wait=False)
                frames.append(indi.wait_blob(CCD, timeout=30).data)
            yield frames
    finally:
        server.stop()


def test_simulator_frames_are_judged_without_error(mosquitto, watcher, tmp_path, ccd_frames):
    model = make_demo_model(tmp_path / "model")
    data = tmp_path / "data"
    factory = FrameFactory(data)
    events = []
    for i, blob in enumerate(ccd_frames):
        assert blob.startswith(b"SIMPLE")
        path = factory.folder / f"ccd-{i}.fits"
        path.write_bytes(blob)
        for when in (NIGHT, DAY):
            events.append(factory.event(f"frames/{path.name}", when, f"ccd-{i}-{when:%H}"))
    with Running(tmp_path, mosquitto, classifier={"model": str(model)}, debounce_frames=1):
        watcher.wait_payload("obsy/clouddetect/availability", b"online", timeout=20)
        judged = [send_and_wait(watcher, event) for event in events]
        for state in judged:
            assert "classifier" in state.methods
            assert state.label != "unknown" or state.clear is None
        night = [s for s in judged if s.frame_id.endswith("-22")]
        assert all("transmission" in s.methods for s in night)
        day = [s for s in judged if s.frame_id.endswith("-11")]
        assert all(s.methods == ["classifier"] and s.label in ("Clear", "Cloudy", "Overcast") for s in day)

        def healthy(messages) -> bool:
            payloads = [json.loads(m.payload) for m in messages if m.topic == HEALTH]
            return any(p["details"]["judged"] == len(events) for p in payloads)

        watcher.wait_for(healthy, timeout=10)
        last = json.loads([m for m in watcher.on(HEALTH)][-1].payload)
        assert last["details"]["failed"] == 0 and last["status"] == "ok"
        assert len(states(watcher)) > len(events)
