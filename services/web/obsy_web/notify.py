"""Notifications: the bus's events, filtered and rate-limited, sent through Apprise.

Why here: the web service already listens to every service's events and availability and
is not on the safety path. The MCP never waits for a notification: it publishes its events as
always, and this module, in another process, decides what to send.

Flow: the bus's dispatch thread hands each event to :meth:`Notifier.offer`, which only filters
and queues (never blocks: a full queue drops and counts). One sender thread takes the queue and
runs each Apprise call on a thread of its own, given up after ``timeout`` seconds, so a hung
notification service holds back only the notifications, never the bus. A failed or given-up
send is counted in the web service's health and published once as a ``notification_failed``
event (and once ``notification_restored`` when sending works again); those two are never
themselves notified.

What is sent (``web.notifications``): events at ``min_level`` or above, and events whose kind is
in ``kinds``, except ``exclude_kinds``; a service going ``offline`` (its Last Will) becomes a
``service_offline`` event, and the weather verdict changing a ``verdict_unsafe`` or ``verdict_safe``
one (info: sent when listed in ``kinds``). The same service and kind again within ``repeat_after`` seconds is
held back and counted, and the next one sent says how many were held back; at most
``max_per_hour`` notifications an hour (critical ones always go). During ``quiet_hours`` only
safety notifications go: critical events, alarms, and the roof closing because it is unsafe.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from obsy.messages import Event, EventKind, SafetyVerdict
from obsy.topics import OFFLINE, ONLINE, Topics
from obsy_web.config import NotificationsConfig

if TYPE_CHECKING:
    from obsy.bus import Bus

log = logging.getLogger("obsy.web.notify")

LEVELS = ("debug", "info", "warning", "error", "critical")
#: Kinds that say something went wrong with the notifications themselves: never notified.
OWN_KINDS = frozenset({"notification_failed", "notification_restored"})
QUEUE_SIZE = 100

#: The title of a notification, by event kind; other kinds use the kind itself.
TITLES = {
    "roof_opened": "roof opened",
    "roof_closing": "roof closing",
    "roof_closed": "roof closed",
    "night_started": "night started",
    "night_ended": "night ended",
    "alarm": "ALARM",
    "alarm_cleared": "alarm cleared",
    "service_offline": "service offline",
    "storage_full": "storage full",
    "verdict_unsafe": "weather unsafe",
    "verdict_safe": "weather safe again",
    "disk_warning": "disk nearly full",
    "disk_critical": "disk critical",
    "disk_ok": "disk ok",
}


@dataclass(frozen=True)
class Notification:
    title: str
    body: str
    level: str
    kind: str
    service: str
    #: Called on the sender thread with (sent, error) once it was sent or given up (the night summary's record).
    done: Callable[[bool, str], None] | None = field(default=None, compare=False, repr=False)


def notify_type(level: str) -> str:
    """The Apprise notification type of an event level (info, warning, failure)."""
    if level in ("error", "critical"):
        return "failure"
    if level == "warning":
        return "warning"
    return "info"


def _parse_quiet_hours(text: str | None) -> tuple[dtime, dtime] | None:
    if not text:
        return None
    start, end = text.split("-")
    return dtime.fromisoformat(start), dtime.fromisoformat(end)


def _within(now: dtime, start: dtime, end: dtime) -> bool:
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # across midnight


class AppriseSender:
    """Sends one notification to every configured URL; True when every one took it."""

    def __init__(self, urls: list[str]) -> None:
        import apprise

        self._apprise = apprise
        self.app = apprise.Apprise()
        self.bad_urls = [url for url in urls if not self.app.add(url)]

    def __call__(self, note: Notification) -> bool:
        return bool(
            self.app.notify(
                title=note.title, body=note.body, notify_type=self._apprise.NotifyType(notify_type(note.level))
            )
        )


class Notifier:
    def __init__(
        self,
        settings: NotificationsConfig,
        topics: Topics,
        *,
        site_name: str,
        timezone: str = "UTC",
        publish_event: Callable[[Event], None] | None = None,
        sender: Callable[[Notification], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.site_name = site_name
        self.zone = ZoneInfo(timezone)
        self.publish_event = publish_event or (lambda _event: None)
        self.clock = clock
        self.now = now or (lambda: datetime.now(self.zone))
        self.quiet = _parse_quiet_hours(settings.quiet_hours)
        self.min_level = LEVELS.index(settings.min_level)
        self.kinds = set(settings.kinds)
        self.exclude = set(settings.exclude_kinds) | OWN_KINDS
        urls = [url.get_secret_value() for url in settings.urls]
        self.sender = sender
        self.bad_urls = 0
        if self.sender is None and urls:
            apprise_sender = AppriseSender(urls)
            self.bad_urls = len(apprise_sender.bad_urls)
            if apprise_sender.bad_urls:
                # The URL is a secret: say which entry, never what it holds.
                positions = [str(urls.index(url) + 1) for url in apprise_sender.bad_urls]
                log.error(
                    "notification URL(s) %s of %s not understood by Apprise: left out",
                    ", ".join(positions),
                    len(urls),
                    extra={"event": "notification_url_invalid"},
                )
            self.sender = apprise_sender
        self.enabled = self.sender is not None
        self._queue: queue.Queue[Notification | None] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self._last_sent: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._sent_times: deque[float] = deque()
        self._availability: dict[str, str] = {}
        self._verdict_safe: bool | None = None
        self._failing = False
        self.counts = {"sent": 0, "failed": 0, "held_back": 0, "dropped": 0, "quiet": 0}
        self.last_error = ""
        self._thread: threading.Thread | None = None

    # --- wiring --------------------------------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """Listen to every service's events and availability, and start the sender thread."""
        if not self.enabled:
            return
        bus.subscribe(self.topics.events("+"), self._on_event, Event)
        bus.subscribe(self.topics.all_availability(), self._on_availability, decode="text")
        bus.subscribe(self.topics.weather_safety, self._on_verdict, SafetyVerdict)
        self.start()

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="web-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout)
        self._thread = None

    def _on_event(self, _topic: str, event: Event) -> None:
        self.offer(event)

    def _on_availability(self, topic: str, value: str) -> None:
        service = self.topics.service_of(topic)
        if service is None:
            return
        value = value.strip()
        before = self._availability.get(service)
        self._availability[service] = value
        # Only a change from online: the retained values replayed at start are not news.
        if before == ONLINE and value == OFFLINE:
            self.offer(
                Event(
                    service=service,
                    kind=EventKind.SERVICE_OFFLINE,
                    level="error",
                    message=f"the {service} service went offline (its connection to the broker was lost)",
                )
            )

    def _on_verdict(self, _topic: str, verdict: SafetyVerdict) -> None:
        """The weather verdict turning unsafe or safe: ``verdict_unsafe`` / ``verdict_safe`` (info level:
        sent when listed in ``kinds``; the roof closing for it is what is sent by default)."""
        before, self._verdict_safe = self._verdict_safe, verdict.safe
        if before is None or before == verdict.safe:
            return
        if verdict.safe:
            self.offer(
                Event(service="weather", kind=EventKind.VERDICT_SAFE, message="the weather verdict is safe again")
            )
            return
        reasons = "; ".join(reason.message for reason in verdict.reasons) or "no reason given"
        self.offer(
            Event(
                service="weather",
                kind=EventKind.VERDICT_UNSAFE,
                message=f"the weather verdict is unsafe: {reasons}",
                data={"reasons": [reason.message for reason in verdict.reasons]},
            )
        )

    # --- deciding ------------------------------------------------------------------------

    def wanted(self, event: Event) -> bool:
        if event.kind in self.exclude:
            return False
        return event.kind in self.kinds or LEVELS.index(event.level) >= self.min_level

    @staticmethod
    def safety(event: Event) -> bool:
        """Sent in quiet hours too: critical events, alarms, the roof closing because it is unsafe."""
        if event.level == "critical" or event.kind == "alarm":
            return True
        return event.kind == "roof_closing" and bool(event.data.get("unsafe_reasons"))

    def offer(self, event: Event) -> bool:
        """Queue a notification for ``event`` when the rules say so; True when queued. Never blocks."""
        if not self.enabled or not self.wanted(event):
            return False
        now = self.clock()
        key = (event.service, event.kind)
        with self._lock:
            if not self.safety(event) and self.quiet_now():
                self.counts["quiet"] += 1
                return False
            last = self._last_sent.get(key)
            if last is not None and now - last < self.settings.repeat_after:
                self._held[key] = self._held.get(key, 0) + 1
                self.counts["held_back"] += 1
                return False
            while self._sent_times and now - self._sent_times[0] >= 3600:
                self._sent_times.popleft()
            if len(self._sent_times) >= self.settings.max_per_hour and event.level != "critical":
                self._held[key] = self._held.get(key, 0) + 1
                self.counts["held_back"] += 1
                return False
            held = self._held.pop(key, 0)
            self._last_sent[key] = now
            self._sent_times.append(now)
        return self._enqueue(self.compose(event, held))

    def quiet_now(self) -> bool:
        """True while the quiet hours last."""
        return self.quiet is not None and _within(self.now().time(), *self.quiet)

    def deliver(self, note: Notification) -> bool:
        """Queue a notification made elsewhere (the night summary), past the event rules: its maker decides
        when, and that it goes once. False when notifications are off or the queue is full. Never blocks."""
        return self.enabled and self._enqueue(note)

    def _enqueue(self, note: Notification) -> bool:
        """Hand a notification to the sending thread; False (counted as dropped) when its queue is full."""
        try:
            self._queue.put_nowait(note)
        except queue.Full:
            with self._lock:
                self.counts["dropped"] += 1
            return False
        return True

    def compose(self, event: Event, held: int = 0) -> Notification:
        title = f"{self.site_name}: {TITLES.get(event.kind, event.kind.replace('_', ' '))}"
        body = event.message or event.kind
        if event.service not in body:
            body = f"[{event.service}] {body}"
        if held:
            body += f"\n({held} more like this held back since the last one)"
        return Notification(title=title, body=body, level=event.level, kind=event.kind, service=event.service)

    # --- sending -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            note = self._queue.get()
            if note is None:
                return
            ok, error = self._send(note)
            if note.done is not None:
                try:
                    note.done(ok, error)
                except Exception:  # the maker's bookkeeping must not end the sender thread
                    log.exception("after sending '%s'", note.title)
            with self._lock:
                self.counts["sent" if ok else "failed"] += 1
                if not ok:
                    self.last_error = error
                was_failing, self._failing = self._failing, not ok
            if not ok and not was_failing:
                log.warning("a notification could not be sent: %s", error, extra={"event": "notification_failed"})
                self._publish(
                    EventKind.NOTIFICATION_FAILED,
                    "warning",
                    f"the notification '{note.title}' could not be sent: {error}",
                )
            elif ok and was_failing:
                self._publish(EventKind.NOTIFICATION_RESTORED, "info", "notifications are sent again")

    def _send(self, note: Notification) -> tuple[bool, str]:
        """One Apprise call on a thread of its own, given up after the timeout."""
        assert self.sender is not None
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["ok"] = self.sender(note)  # type: ignore[misc]
            except Exception as exc:  # an Apprise plugin's bug must not end the sender thread
                result["error"] = f"{type(exc).__name__}: {exc}"

        worker = threading.Thread(target=call, name="web-notify-send", daemon=True)
        worker.start()
        worker.join(self.settings.timeout)
        if worker.is_alive():
            return False, f"no answer within {self.settings.timeout:g} s"
        if "error" in result:
            return False, result["error"]
        if not result.get("ok"):
            return False, "a notification service refused it or could not be reached (see the log)"
        return True, ""

    def _publish(self, kind: EventKind, level: str, message: str) -> None:
        try:
            self.publish_event(Event(service="web", kind=kind, level=level, message=message))  # type: ignore[arg-type]
        except Exception:
            log.exception("the %s event could not be published", kind)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                **self.counts,
                "queued": self._queue.qsize(),
                "invalid_urls": self.bad_urls,
                "failing": self._failing,
                "last_error": self.last_error,
            }
