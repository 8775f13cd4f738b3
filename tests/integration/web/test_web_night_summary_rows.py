"""The end-of-night summary made from stored rows, on real Postgres and SQLite: the roof's open spans and
why each closed, lights per target and filter, stacks, photometry and streaks; the notification's text;
when it is sent (the delay, quiet hours, once, again after a failure) with the notifier's own sender hook."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from obsy.config import NotificationsConfig
from obsy.messages import NightSummary as NightSummaryMessage
from obsy.topics import Topics
from obsy_web.db import models, session_factory
from obsy_web.nights import (
    RETRY_AFTER,
    NightSummaries,
    closing_cause,
    night_link,
    night_summary,
    night_window,
    summary_text,
)
from obsy_web.notify import Notification, Notifier
from tests.support.web_databases import database_url, migrated_engine  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
ZONE = ZoneInfo("Europe/Vienna")
NIGHT = "2026-11-20"
EVENING = datetime(2026, 11, 20, 18, 0, tzinfo=ZONE).astimezone(UTC)


def event(kind: str, at: datetime, n: int, **data) -> models.EventRecord:
    return models.EventRecord(
        site="obsy", fingerprint=f"{kind}-{n}", time=at, service="mcp", kind=kind, level="info", message="", data=data
    )


def frame(n: int, target: str, filter_name: str | None, accepted: bool | None, frame_type: str = "light", **kw):
    return models.ImagingFrameRecord(
        site=kw.get("site", "obsy"),
        frame_id=n,
        time=EVENING + timedelta(minutes=n),
        night=kw.get("night", NIGHT),
        frame_type=frame_type,
        target=target,
        filter=filter_name,
        exposure_s=300.0,
        accepted=accepted,
        rejected_because=[] if accepted is not False else ["fwhm 6.1 px over 4"],
    )


def test_a_night_is_summed_up_from_what_was_stored(migrated_engine):  # noqa: F811
    hour = timedelta(hours=1)
    with session_factory(migrated_engine)() as db:
        db.add_all(
            [
                # Opened at 19:00, closed for rain at 21:00, opened again at 22:00, closed at dawn at 06:00.
                event("roof_opened", EVENING + hour, 1, reason="dark, safe, plan for tonight"),
                event(
                    "roof_closed",
                    EVENING + 3 * hour,
                    2,
                    reason="weather unsafe: rain detected",
                    unsafe_reasons=["weather unsafe: rain detected"],
                ),
                event("roof_opened", EVENING + 4 * hour, 3, reason="dark, safe, plan for tonight"),
                event("roof_closed", EVENING + 12 * hour, 4, reason="Sun at -11.8°, above the limit -12°"),
                event("night_ended", EVENING + 12 * hour, 5, night=NIGHT, reason="the Sun rose above -12°"),
                # The next night's opening is not this night's.
                event("roof_opened", EVENING + 25 * hour, 6, reason="dark, safe, plan for tonight"),
                frame(1, "M 31", "L", True),
                frame(2, "M 31", "L", True),
                frame(3, "M 31", "L", False),
                frame(4, "M 31", "Ha", True),
                frame(5, "SS Cyg", None, None),  # not graded: counts towards the integration
                frame(6, "M 31", None, None, frame_type="dark"),
                frame(7, "M 31", "L", True, night="2026-11-21"),  # another night
                frame(8, "M 31", "L", True, site="north"),  # another site
                models.LiveStackState(
                    site="obsy",
                    time=EVENING + 2 * hour,
                    stack_id=7,
                    night=NIGHT,
                    target="M 31",
                    filter="L",
                    frames=1,
                    integration_s=300.0,
                    left_out=0,
                    preview="p.jpg",
                    data={},
                ),
                models.LiveStackState(
                    site="obsy",
                    time=EVENING + 5 * hour,
                    stack_id=7,
                    night=NIGHT,
                    target="M 31",
                    filter="L",
                    frames=2,
                    integration_s=600.0,
                    left_out=0,
                    preview="p.jpg",
                    data={},
                ),
                *[
                    models.PhotometryPoint(
                        site="obsy",
                        fingerprint=f"p{n}",
                        time=EVENING + n * hour,
                        night=NIGHT,
                        target="SS Cyg",
                        frame_id=n,
                        magnitude=None if n == 3 else 11.2,
                        report=None if n == 1 else "reports/2026-11-20/SS_Cyg.txt",
                        data={},
                    )
                    for n in (1, 2, 3)
                ],
                *[
                    models.AllskyStreakRecord(
                        site="obsy",
                        fingerprint=f"s{n}",
                        time=EVENING + n * hour,
                        night=NIGHT,
                        frame_id=f"f{n}",
                        kind=kind,
                        snr=9.0,
                        length_px=120.0,
                        data={},
                    )
                    for n, kind in enumerate(["meteor", "meteor", "satellite"])
                ],
            ]
        )
        db.commit()
        summary = night_summary(
            db, site="obsy", night=NIGHT, zone=ZONE, now=EVENING + 20 * hour, link=night_link("http://obs:8080/", NIGHT)
        )

    roof = summary["roof"]
    assert [span["cause"] for span in roof["spans"]] == ["rain", "dawn"]
    assert roof["open_s"] == pytest.approx(10 * 3600)
    assert not roof["still_open"]
    frames = summary["frames"]
    assert [(g["target"], g["filter"], g["taken"], g["accepted"], g["rejected"]) for g in frames["lights"]] == [
        ("M 31", "Ha", 1, 1, 0),
        ("M 31", "L", 3, 2, 1),
        ("SS Cyg", "(no filter)", 1, 0, 0),
    ]
    assert [g["integration_s"] for g in frames["lights"]] == [300.0, 600.0, 300.0]
    assert frames["integration_s"] == 1200.0
    assert frames["calibration"] == {"dark": 1}
    assert summary["stacks"] == [{"stack_id": 7, "target": "M 31", "filter": "L", "frames": 2, "integration_s": 600.0}]
    assert summary["photometry"] == [
        {"target": "SS Cyg", "measured": 2, "unmeasured": 1, "report": "reports/2026-11-20/SS_Cyg.txt"}
    ]
    assert summary["allsky"] == {"frames": 0, "meteors": 2, "satellites": 1}
    assert summary["ended_because"] == "the Sun rose above -12°"

    text = summary_text(summary, ZONE)
    assert "Roof open 10 h 00 min: 19:00–21:00 closed for rain (weather unsafe: rain detected); 22:00–06:00" in text
    assert "  M 31 L: 3 taken, 2 accepted, 1 rejected, 10 min" in text
    assert "Calibration: 1 dark" in text
    assert "Live stacks: M 31 L (2 frames, 10 min)" in text
    assert "Photometry SS Cyg: 2 measured, 1 without a magnitude, AAVSO report written" in text
    assert "2 meteors, 1 satellites" in text
    assert text.endswith("http://obs:8080/allsky?night=2026-11-20")


def test_a_roof_still_open_counts_until_now_and_an_empty_night_says_so(migrated_engine):  # noqa: F811
    with session_factory(migrated_engine)() as db:
        empty = night_summary(db, site="obsy", night=NIGHT, zone=ZONE, now=EVENING)
        assert summary_text(empty, ZONE).startswith("Roof not opened\nLights: none")
        db.add(event("roof_opened", EVENING, 1, reason="dark, safe, plan for tonight"))
        db.commit()
        summary = night_summary(db, site="obsy", night=NIGHT, zone=ZONE, now=EVENING + timedelta(minutes=90))
    assert summary["roof"]["still_open"]
    assert summary["roof"]["open_s"] == pytest.approx(5400)
    assert summary["ended"] is None


def test_closing_causes_and_the_night_window():
    assert closing_cause("weather unsafe: rain detected", ["weather unsafe: rain detected"]) == "rain"
    assert closing_cause("sky not clear (overcast)", ["sky not clear (overcast)"]) == "clouds"
    assert closing_cause("weather unsafe: wind 61 km/h", ["weather unsafe: wind 61 km/h"]) == "weather"
    assert closing_cause("Sun at -11.9°, above the limit -12°", []) == "dawn"
    assert closing_cause("schedule finished", []) == "schedule"
    assert closing_cause("night ended by the operator", []) == "operator"
    assert closing_cause("mode off", []) == "operator"
    assert closing_cause("broker lost for 65 s", ["broker lost for 65 s"]) == "unsafe"
    assert closing_cause("", []) == "other"
    start, end = night_window(NIGHT, ZONE)
    assert start == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)  # local noon, UTC+1 in November
    assert end - start == timedelta(hours=24)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_a_summary_waits_for_the_delay_and_quiet_hours_goes_once_and_is_retried_after_a_failure(
    migrated_engine,  # noqa: F811
):
    sessions = session_factory(migrated_engine)
    ended = EVENING + timedelta(hours=12)  # 06:00 local
    with sessions() as db:
        db.add(event("night_ended", ended, 1, night=NIGHT, reason="the Sun rose above -12°"))
        db.commit()
    clock = Clock(ended + timedelta(seconds=60))
    sent: list[Notification] = []
    published: list[NightSummaryMessage] = []
    works = [False]

    def sender(note: Notification) -> bool:
        sent.append(note)
        return works[0]

    def make(**settings) -> tuple[Notifier, NightSummaries]:
        config = NotificationsConfig(night_summary_delay=300, quiet_hours="23:00-07:30", **settings)
        notifier = Notifier(
            config, Topics(), site_name="Site", sender=sender, now=lambda: clock().astimezone(ZONE), timezone=str(ZONE)
        )
        notifier.start()
        job = NightSummaries(
            sessions,
            notifier,
            config,
            site="obsy",
            site_name="Site",
            timezone=str(ZONE),
            public_url=None,
            publish=published.append,
            now=clock,
        )
        return notifier, job

    notifier, job = make()
    try:
        assert job.check() is None  # a minute after the night ended: the delay is 300 s
        assert published == []
        clock.at = ended + timedelta(minutes=10)  # 06:10: quiet hours until 07:30
        assert job.check() is None
        # Made, recorded and published (Home Assistant's sensor) at once; the notification waits.
        assert [message.night for message in published] == [NIGHT]
        assert published[0].ended_because == "the Sun rose above -12°"
        assert sent == []
        assert job.check() is None
        assert len(published) == 1
        clock.at = ended + timedelta(hours=2)  # 08:00
        assert job.check() == NIGHT
        wait_for(lambda: job.counts["failed"] == 1)  # the notification service failed: tried again later
        assert job.check() is None
        clock.at += RETRY_AFTER
        works[0] = True
        assert job.check() == NIGHT
        wait_for(lambda: job.counts["sent"] == 1)
        assert job.check() is None  # sent: never again
        assert [note.title for note in sent] == ["Site: night 2026-11-20 summary"] * 2
        with sessions() as db:
            [record] = db.scalars(select(models.NightSummaryRecord)).all()
            assert record.attempts == 2
            assert record.sent_at == clock.at
            assert record.summary["ended_because"] == "the Sun rose above -12°"
    finally:
        notifier.stop()
    notifier, job = make(night_summary=False)
    try:
        with sessions() as db:
            db.execute(update(models.NightSummaryRecord).values(sent_at=None))
            db.commit()
        assert job.check() is None  # switched off
        assert job.counts["checked"] == 0
    finally:
        notifier.stop()


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)
