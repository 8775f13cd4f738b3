"""The end-of-night summary: what one night did, from what the web service stored of it.

Made from the web's own tables, so it works with any service down: the MCP's ``roof_opened`` /
``roof_closed`` events (how long the roof was open, and why each closing), the imaging service's
frames (``imaging_frames``: lights taken, accepted and rejected per target and filter, with
their integration; calibration frames by type), its live stacks and photometry points (and the
AAVSO reports they name), and the allsky service's streaks (meteors, satellites).

:class:`NightSummaries` sends it once per night: when the MCP's ``night_ended`` event of this site
is stored and ``night_summary_delay`` seconds old (the roof closed, the last frames stored), one
notification at info level, held back while quiet hours last. The ``night_summaries`` table
records each summary and when it was sent, so a restart never sends it again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from obsy.messages import NightSummary
from obsy_web.config import NotificationsConfig
from obsy_web.db.models import (
    AllskyFrameRecord,
    AllskyStreakRecord,
    EventRecord,
    ImagingFrameRecord,
    LiveStackState,
    NightSummaryRecord,
    PhotometryPoint,
)
from obsy_web.notify import Notification, Notifier

log = logging.getLogger("obsy.web.nights")

#: A night whose end is older than this is not summarised any more (the web was down too long: old news).
LOOKBACK = timedelta(hours=36)
#: A summary that could not be sent is tried again after this long.
RETRY_AFTER = timedelta(minutes=10)


def night_window(night: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The observing night ``night`` (the evening's date): local noon to the next local noon, in UTC."""
    evening = date.fromisoformat(night)
    start = datetime.combine(evening, dtime(12), zone)
    end = datetime.combine(evening + timedelta(days=1), dtime(12), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


#: Why a roof closed, first match wins: (cause, words in the closing's reason or unsafe reasons).
CAUSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rain", ("rain", "wet")),
    ("clouds", ("sky not clear", "cloud")),
    ("weather", ("weather unsafe",)),
    ("dawn", ("sun at",)),
    ("schedule", ("schedule",)),
    ("operator", ("operator", "manual", "mode off", "outside obsy")),
    ("alarm", ("alarm",)),
)


def closing_cause(reason: str, unsafe_reasons: list[str]) -> str:
    """Why the roof closed, in one word people filter on: rain, clouds, weather, dawn, schedule, operator,
    alarm, unsafe (another hazard: a silent service, the broker lost) or other; from the MCP's closing
    reason and its unsafe reasons."""
    text = " ".join([reason, *unsafe_reasons]).lower()
    for cause, words in CAUSES:
        if any(word in text for word in words):
            return cause
    return "unsafe" if unsafe_reasons else "other"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


def _roof(session: Session, site: str, start: datetime, end: datetime, zone: ZoneInfo) -> dict[str, Any]:
    """The roof's open spans in [start, end] from the MCP's roof events, each closing with its cause."""
    rows = session.execute(
        select(EventRecord.time, EventRecord.kind, EventRecord.data)
        .where(
            EventRecord.site == site,
            EventRecord.service == "mcp",
            EventRecord.kind.in_(("roof_opened", "roof_closed")),
            EventRecord.time >= start,
            EventRecord.time <= end,
        )
        .order_by(EventRecord.time)
    ).all()
    spans: list[dict[str, Any]] = []
    opened: datetime | None = None
    for time, kind, data in rows:
        if kind == "roof_opened":
            opened = opened or time
            continue
        if opened is None:
            continue  # closed without an opening this night (opened before it): nothing to count
        reason = str(data.get("reason") or "")
        unsafe = [str(item) for item in data.get("unsafe_reasons") or []]
        spans.append(
            {
                "opened": opened.isoformat(),
                "closed": time.isoformat(),
                "open_s": (time - opened).total_seconds(),
                "cause": closing_cause(reason, unsafe),
                "reason": "; ".join(unsafe) or reason,
            }
        )
        opened = None
    still_open = opened is not None
    if opened is not None:
        spans.append(
            {
                "opened": opened.isoformat(),
                "closed": None,
                "open_s": max(0.0, (end - opened).total_seconds()),
                "cause": None,
                "reason": "not closed by the night's end",
            }
        )
    return {"open_s": sum(span["open_s"] for span in spans), "spans": spans, "still_open": still_open}


def _frames(session: Session, site: str, night: str) -> dict[str, Any]:
    """Lights per target and filter (taken, accepted, rejected, integration) and calibration frames by type."""
    rows = session.execute(
        select(
            ImagingFrameRecord.frame_type,
            ImagingFrameRecord.target,
            ImagingFrameRecord.filter,
            ImagingFrameRecord.exposure_s,
            ImagingFrameRecord.accepted,
        ).where(ImagingFrameRecord.site == site, ImagingFrameRecord.night == night)
    ).all()
    lights: dict[tuple[str, str], dict[str, Any]] = {}
    calibration: dict[str, int] = {}
    for frame_type, target, filter_name, exposure_s, accepted in rows:
        if frame_type.lower() != "light":
            calibration[frame_type.lower()] = calibration.get(frame_type.lower(), 0) + 1
            continue
        key = (target or "(no target)", filter_name or "(no filter)")
        group = lights.setdefault(
            key,
            {"target": key[0], "filter": key[1], "taken": 0, "accepted": 0, "rejected": 0, "integration_s": 0.0},
        )
        group["taken"] += 1
        if accepted is False:
            group["rejected"] += 1
            continue
        # Accepted, or not graded (grading off): it counts towards the integration.
        group["accepted"] += 1 if accepted else 0
        group["integration_s"] += exposure_s or 0.0
    groups = sorted(lights.values(), key=lambda group: (group["target"].lower(), group["filter"].lower()))
    return {
        "lights": groups,
        "lights_taken": sum(group["taken"] for group in groups),
        "lights_accepted": sum(group["accepted"] for group in groups),
        "lights_rejected": sum(group["rejected"] for group in groups),
        "integration_s": sum(group["integration_s"] for group in groups),
        "calibration": dict(sorted(calibration.items())),
    }


def _stacks(session: Session, site: str, night: str) -> list[dict[str, Any]]:
    """Each live stack of the night as its last fold left it."""
    last: dict[int, dict[str, Any]] = {}
    rows = session.execute(
        select(
            LiveStackState.stack_id,
            LiveStackState.target,
            LiveStackState.filter,
            LiveStackState.frames,
            LiveStackState.integration_s,
        )
        .where(LiveStackState.site == site, LiveStackState.night == night)
        .order_by(LiveStackState.time)
    ).all()
    for stack_id, target, filter_name, frames, integration_s in rows:
        last[stack_id] = {
            "stack_id": stack_id,
            "target": target,
            "filter": filter_name,
            "frames": frames,
            "integration_s": integration_s,
        }
    return sorted(last.values(), key=lambda stack: stack["stack_id"])


def _photometry(session: Session, site: str, night: str) -> list[dict[str, Any]]:
    """Per variable star: lights measured, lights without a magnitude, the AAVSO report written."""
    targets: dict[str, dict[str, Any]] = {}
    rows = session.execute(
        select(PhotometryPoint.target, PhotometryPoint.magnitude, PhotometryPoint.report).where(
            PhotometryPoint.site == site, PhotometryPoint.night == night
        )
    ).all()
    for target, magnitude, report in rows:
        entry = targets.setdefault(target, {"target": target, "measured": 0, "unmeasured": 0, "report": None})
        entry["measured" if magnitude is not None else "unmeasured"] += 1
        entry["report"] = report or entry["report"]
    return sorted(targets.values(), key=lambda entry: entry["target"].lower())


def _allsky(session: Session, site: str, night: str) -> dict[str, Any]:
    streaks = dict(
        session.execute(
            select(AllskyStreakRecord.kind, func.count())
            .where(AllskyStreakRecord.site == site, AllskyStreakRecord.night == night)
            .group_by(AllskyStreakRecord.kind)
        ).all()
    )
    frames = session.scalar(
        select(func.count()).where(AllskyFrameRecord.site == site, AllskyFrameRecord.night == night)
    )
    return {"frames": frames or 0, "meteors": streaks.get("meteor", 0), "satellites": streaks.get("satellite", 0)}


def night_ended_event(session: Session, site: str, night: str) -> tuple[datetime, str] | None:
    """When and why the MCP said ``night`` ended (its ``night_ended`` event), if it did."""
    start, end = night_window(night, UTC)
    rows = session.execute(
        select(EventRecord.time, EventRecord.data)
        .where(
            EventRecord.site == site,
            EventRecord.service == "mcp",
            EventRecord.kind == "night_ended",
            EventRecord.time >= start - timedelta(hours=14),  # any zone's noon to noon
            EventRecord.time <= end + timedelta(hours=14),
        )
        .order_by(EventRecord.time)
    ).all()
    for time, data in rows:
        if data.get("night") == night:
            return time, str(data.get("reason") or "")
    return None


def night_summary(
    session: Session, *, site: str, night: str, zone: ZoneInfo, now: datetime | None = None, link: str | None = None
) -> dict[str, Any]:
    """Everything the web stored of one night, summed up (the notification and ``GET /nights/{night}/summary``)."""
    start, end = night_window(night, zone)
    ended = night_ended_event(session, site, night)
    until = min(end, now or datetime.now(UTC))
    return {
        "night": night,
        "site": site,
        "ended": ended[0].isoformat() if ended else None,
        "ended_because": ended[1] if ended else None,
        "roof": _roof(session, site, start, until, zone),
        "frames": _frames(session, site, night),
        "stacks": _stacks(session, site, night),
        "photometry": _photometry(session, site, night),
        "allsky": _allsky(session, site, night),
        "link": link,
    }


def _roof_line(roof: dict[str, Any], zone: ZoneInfo) -> str:
    if not roof["spans"]:
        return "Roof not opened"
    spans = []
    for span in roof["spans"]:
        opened = _local(datetime.fromisoformat(span["opened"]), zone)
        if span["closed"] is None:
            spans.append(f"{opened}–(still open)")
        else:
            closed = _local(datetime.fromisoformat(span["closed"]), zone)
            spans.append(f"{opened}–{closed} closed for {span['cause']} ({span['reason']})")
    return f"Roof open {_duration(roof['open_s'])}: " + "; ".join(spans)


def summary_text(summary: dict[str, Any], zone: ZoneInfo) -> str:
    """The notification's body: a few short lines people read on a phone."""
    lines = [_roof_line(summary["roof"], zone)]
    frames = summary["frames"]
    if frames["lights"]:
        lines.append(
            f"Lights: {frames['lights_taken']} taken, {frames['lights_accepted']} accepted, "
            f"{frames['lights_rejected']} rejected, {_duration(frames['integration_s'])} integration"
        )
        for group in frames["lights"]:
            lines.append(
                f"  {group['target']} {group['filter']}: {group['taken']} taken, {group['accepted']} accepted, "
                f"{group['rejected']} rejected, {_duration(group['integration_s'])}"
            )
    else:
        lines.append("Lights: none")
    if frames["calibration"]:
        lines.append("Calibration: " + ", ".join(f"{count} {kind}" for kind, count in frames["calibration"].items()))
    if summary["stacks"]:
        lines.append(
            "Live stacks: "
            + "; ".join(
                f"{stack['target'] or '(no target)'} {stack['filter'] or '(no filter)'} "
                f"({stack['frames']} frames, {_duration(stack['integration_s'])})"
                for stack in summary["stacks"]
            )
        )
    for entry in summary["photometry"]:
        report = ", AAVSO report written" if entry["report"] else ""
        lines.append(
            f"Photometry {entry['target']}: {entry['measured']} measured, {entry['unmeasured']} without a magnitude"
            + report
        )
    allsky = summary["allsky"]
    lines.append(f"Allsky: {allsky['frames']} frames, {allsky['meteors']} meteors, {allsky['satellites']} satellites")
    if summary["ended_because"]:
        lines.append(f"Night ended: {summary['ended_because']}")
    if summary["link"]:
        lines.append(summary["link"])
    return "\n".join(lines)


def summary_message(summary: dict[str, Any]) -> NightSummary:
    """The retained ``web/night_summary`` message of a summary (its figures and the whole of it)."""
    frames = summary["frames"]
    return NightSummary(
        night=summary["night"],
        ended=summary["ended"],
        ended_because=summary["ended_because"],
        roof_open_s=summary["roof"]["open_s"],
        closed_for=[span["cause"] for span in summary["roof"]["spans"] if span["cause"]],
        lights_taken=frames["lights_taken"],
        lights_accepted=frames["lights_accepted"],
        lights_rejected=frames["lights_rejected"],
        integration_s=frames["integration_s"],
        stacks=len(summary["stacks"]),
        photometry_reports=sum(1 for entry in summary["photometry"] if entry["report"]),
        meteors=summary["allsky"]["meteors"],
        satellites=summary["allsky"]["satellites"],
        link=summary["link"],
        details=summary,
    )


def night_link(base: str | None, night: str) -> str | None:
    """The dashboard's page of the night (the allsky page opened on it), or None without a public URL."""
    if not base:
        return None
    return f"{base.rstrip('/')}/allsky?night={night}"


class NightSummaries:
    """Makes each night's summary after the MCP's ``night_ended`` of this site, publishes it (retained, for
    Home Assistant) and sends it once as a notification (see the module)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        notifier: Notifier,
        settings: NotificationsConfig,
        *,
        site: str,
        site_name: str,
        timezone: str,
        public_url: str | None,
        publish: Callable[[NightSummary], None] = lambda _message: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.publish = publish
        self.sessions = sessions
        self.notifier = notifier
        self.settings = settings
        self.site = site
        self.site_name = site_name
        self.zone = ZoneInfo(timezone)
        self.public_url = public_url
        self.now = now
        self._in_flight = threading.Event()
        self._retry_at: dict[str, datetime] = {}
        self.counts = {"checked": 0, "sent": 0, "failed": 0}

    @property
    def enabled(self) -> bool:
        return self.settings.night_summary

    def check(self) -> str | None:
        """Make the summary of each night that ended (recorded, published for Home Assistant) and send the
        next one due as a notification; returns the night queued. Called from the service's poll."""
        if not self.enabled:
            return None
        self.counts["checked"] += 1
        now = self.now()
        with self.sessions() as session:
            for ended_at, night in self._ended_nights(session, now):
                record = session.scalar(
                    select(NightSummaryRecord).where(
                        NightSummaryRecord.site == self.site, NightSummaryRecord.night == night
                    )
                )
                if record is None:
                    record = NightSummaryRecord(
                        site=self.site, night=night, ended_at=ended_at, attempts=0, summary=self._make(session, night)
                    )
                    session.add(record)
                    session.commit()
                    self._publish(record.summary)
                if not self._notify_now(record, now):
                    continue
                # Made again: what was stored since (a late frame) is in it.
                record.summary = self._make(session, night)
                record.attempts = (record.attempts or 0) + 1
                session.commit()
                self._publish(record.summary)
                self._send(record.id, night, record.summary)
                return night
        return None

    def _notify_now(self, record: NightSummaryRecord, now: datetime) -> bool:
        """Whether the notification of ``record`` goes now: not sent yet, none in flight, not in quiet hours,
        not waiting to be tried again."""
        if not self.notifier.enabled or record.sent_at is not None or self._in_flight.is_set():
            return False
        return not self.notifier.quiet_now() and now >= self._retry_at.get(record.night, now)

    def _make(self, session: Session, night: str) -> dict[str, Any]:
        link = night_link(self.public_url, night)
        return night_summary(session, site=self.site, night=night, zone=self.zone, now=self.now(), link=link)

    def _publish(self, summary: dict[str, Any]) -> None:
        try:
            self.publish(summary_message(summary))
        except Exception:  # the bus's trouble must not keep the notification back
            log.exception("the night summary of %s could not be published", summary["night"])

    def _ended_nights(self, session: Session, now: datetime) -> list[tuple[datetime, str]]:
        """This site's nights the MCP ended within LOOKBACK, at least the delay ago, oldest first."""
        rows = session.execute(
            select(EventRecord.time, EventRecord.data)
            .where(
                EventRecord.site == self.site,
                EventRecord.service == "mcp",
                EventRecord.kind == "night_ended",
                EventRecord.time >= now - LOOKBACK,
                EventRecord.time <= now - timedelta(seconds=self.settings.night_summary_delay),
            )
            .order_by(EventRecord.time)
        ).all()
        nights: dict[str, datetime] = {}
        for time, data in rows:
            night = data.get("night")
            if isinstance(night, str) and len(night) == 10:
                nights.setdefault(night, time)
        return [(time, night) for night, time in nights.items()]

    def _send(self, record_id: int, night: str, summary: dict[str, Any]) -> None:
        self._in_flight.set()

        def done(ok: bool, error: str) -> None:
            try:
                with self.sessions() as session:
                    record = session.get(NightSummaryRecord, record_id)
                    if record is not None:
                        if ok:
                            record.sent_at = self.now()
                            record.last_error = ""
                        else:
                            record.last_error = error[:500]
                        session.commit()
            except Exception:
                log.exception("the night summary of %s could not be marked as sent", night)
            finally:
                self.counts["sent" if ok else "failed"] += 1
                if not ok:
                    self._retry_at[night] = self.now() + RETRY_AFTER
                self._in_flight.clear()

        note = Notification(
            title=f"{self.site_name}: night {night} summary",
            body=summary_text(summary, self.zone),
            level="info",
            kind="night_summary",
            service="web",
            done=done,
        )
        if not self.notifier.deliver(note):
            done(False, "the notification queue is full")
