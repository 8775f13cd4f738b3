"""The end-of-night summary through the running web service: the night's messages on Mosquitto, stored,
summed up after the MCP's ``night_ended`` and sent once through Apprise to a webhook on loopback; served
at ``GET /api/v1/nights/<night>/summary``; not sent again after a restart. On SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from obsy import astro
from obsy.messages import AllskyStreak, Event, ImagingFrame, ImagingLiveStack, NightSummary
from obsy_web.nights import night_window
from tests.support.notify_receiver import Receiver, receiver  # noqa: F401 (fixture)
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb, web_on

pytestmark = pytest.mark.integration

NOTIFICATIONS = {"kinds": [], "min_level": "critical", "night_summary_delay": 1}


def summaries(receiver: Receiver) -> list[dict]:  # noqa: F811
    return [body for body in receiver.received() if "summary" in body["title"]]


def publish_night(watcher: Watcher, night: str, zone: ZoneInfo) -> None:
    """A short night: the roof open, closed for rain; three lights of M 31 (one rejected), a dark, a live
    stack, two meteors; then the MCP says the night ended."""
    start, _ = night_window(night, zone)
    now = datetime.now(UTC)
    opened, closed = start + (now - start) / 3, start + (now - start) * 2 / 3

    def mcp(kind: str, at: datetime, **data) -> None:
        event = Event(service="mcp", kind=kind, message=kind, data=data, timestamp=at)
        watcher.publish("obsy/mcp/events", event.model_dump_json())

    mcp("roof_opened", opened, reason="dark, safe, plan for tonight")
    for n, (frame_type, accepted) in enumerate([("light", True), ("light", True), ("light", False), ("dark", None)]):
        frame = ImagingFrame(
            frame_id=n + 1,
            sha256=f"{n:064d}",
            path=f"lights/{night}/M31/L/{n}.fits",
            source=f"/captures/{n}.fits",
            frame_type=frame_type,
            night=night,
            target="M 31",
            filter="L" if frame_type == "light" else None,
            exposure_s=120.0,
            accepted=accepted,
            rejected_because=[] if accepted is not False else ["fwhm 6.1 px over 4"],
        )
        watcher.publish("obsy/imaging/frames", frame.model_dump_json())
    stack = ImagingLiveStack(
        stack_id=3,
        night=night,
        target="M 31",
        filter="L",
        frames=2,
        integration_s=240.0,
        reference="r.fits",
        path="s.fits",
        preview="s.jpg",
        frame_id=2,
        weight=1.0,
        shift_px=(0.5, 0.2),
        rotation_deg=0.0,
        fold_s=0.3,
    )
    watcher.publish("obsy/imaging/livestack/state", stack.model_dump_json(), retain=True)
    for n in range(2):
        streak = AllskyStreak(
            frame_id=f"f{n}",
            night=night,
            kind="meteor",
            start=(10, 10),
            end=(90, 40),
            length_px=85.0,
            snr=12.0,
            steadiness=0.2,
            fade=0.5,
            exposure_s=30.0,
        )
        watcher.publish("obsy/allsky/streaks", streak.model_dump_json())
    unsafe = ["weather unsafe: rain detected"]
    mcp("roof_closed", closed, reason=unsafe[0], unsafe_reasons=unsafe)
    mcp("night_ended", now, night=night, reason="the Sun rose above -12°")


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_night_summary_is_sent_once_served_and_not_again_after_a_restart(database, tmp_path, receiver):  # noqa: F811
    options = {"notifications": {"urls": [receiver.url], **NOTIFICATIONS}, "public_url": "http://obs.example:8080/"}
    with web_on(database, tmp_path, {"ann": "viewer"}, **options) as web:
        zone = ZoneInfo(web.config.site.timezone)
        night = astro.night_of(web.config.site, datetime.now(UTC)).isoformat()
        watcher = Watcher(web.broker.port, ["obsy/#"])
        try:
            publish_night(watcher, night, zone)
            receiver.wait(1, timeout=40)
            [note] = summaries(receiver)
            assert note["title"] == f"Test site: night {night} summary"
            assert note["type"] == "info"
            body = note["message"]
            assert "closed for rain (weather unsafe: rain detected)" in body
            assert "M 31 L: 3 taken, 2 accepted, 1 rejected, 4 min" in body
            assert "Calibration: 1 dark" in body
            assert "Live stacks: M 31 L (2 frames, 4 min)" in body
            assert "2 meteors" in body
            assert f"http://obs.example:8080/allsky?night={night}" in body

            # Home Assistant's sensor reads the retained summary on the bus.
            watcher.wait_for(lambda got: any(m.topic == "obsy/web/night_summary" for m in got))
            message = NightSummary.model_validate_json(watcher.on("obsy/web/night_summary")[-1].payload)
            assert (message.night, message.lights_accepted, message.integration_s) == (night, 2, 240.0)
            assert (message.closed_for, message.meteors) == (["rain"], 2)

            with web.login("ann") as client:
                reply = web.wait_until(
                    lambda: (r := client.get(f"/api/v1/nights/{night}/summary")).json()["sent_at"] and r,
                    timeout=20,
                )
                summary = reply.json()
                assert summary["roof"]["spans"][0]["cause"] == "rain"
                assert summary["frames"]["lights"] == [
                    {"target": "M 31", "filter": "L", "taken": 3, "accepted": 2, "rejected": 1, "integration_s": 240.0}
                ]
                assert summary["allsky"]["meteors"] == 2
                assert client.get("/api/v1/nights/2026-13-45/summary").status_code == 422
                assert client.get("/api/v1/nights/tonight/summary").status_code == 422
                assert client.get("/api/v1/nights/9999-12-31/summary").status_code == 422
            with web.client() as anonymous:
                assert anonymous.get(f"/api/v1/nights/{night}/summary").status_code == 401
        finally:
            watcher.close()

        # A restart finds the night_ended event stored, and the summary recorded as sent: nothing more.
        web.stop()
        again = RunningWeb(tmp_path, web.broker, web.database_url, **options).start(timeout=60)
        try:
            again.wait_until(lambda: again.service.night_summaries.counts["checked"] >= 2, timeout=30)
            assert len(summaries(receiver)) == 1
        finally:
            again.stop()
