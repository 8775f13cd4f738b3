"""The notifier's rules: which events are sent, quiet hours, the hourly limit (no sending here)."""

from __future__ import annotations

from datetime import datetime

from obsy.config import NotificationsConfig
from obsy.messages import Event
from obsy.topics import Topics
from obsy_web.notify import Notifier, notify_type


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def notifier(clock: Clock, hour: int = 12, **settings) -> Notifier:
    n = Notifier(
        NotificationsConfig(**settings),
        Topics(),
        site_name="Site",
        sender=lambda _note: True,
        clock=clock,
        now=lambda: datetime(2026, 1, 1, hour, 30),
    )
    return n


def event(kind: str, level: str = "info", **data) -> Event:
    return Event(service="mcp", kind=kind, level=level, message=f"{kind} happened", data=data)


def test_level_kinds_and_exclusions():
    n = notifier(Clock(), exclude_kinds=["night_started"])
    assert n.offer(event("roof_closed"))  # a listed kind, whatever its level
    assert not n.offer(event("device_action"))  # info, not listed
    assert n.offer(event("step_failed", "error"))
    assert not n.offer(event("night_started"))
    assert not n.offer(Event(service="web", kind="notification_failed", level="error"))  # never about itself


def test_quiet_hours_let_only_safety_through():
    n = notifier(Clock(), hour=2, quiet_hours="23:00-07:00")
    assert not n.offer(event("roof_closed"))
    assert not n.offer(event("roof_closing", "warning"))  # closing at the end of the night: not a safety matter
    assert n.offer(event("roof_closing", "warning", unsafe_reasons=["weather: rain"]))
    assert n.offer(event("alarm", "critical"))
    assert n.health()["quiet"] == 2
    assert notifier(Clock(), hour=12, quiet_hours="23:00-07:00").offer(event("roof_closed"))


def test_hourly_limit_spares_critical_events():
    clock = Clock()
    n = notifier(clock, max_per_hour=2, repeat_after=0)
    assert n.offer(event("a", "error"))
    assert n.offer(event("b", "error"))
    assert not n.offer(event("c", "error"))
    assert n.offer(event("d", "critical"))
    clock.t += 3600
    assert n.offer(event("c", "error"))


def test_repeats_are_held_back_and_counted_in_the_next():
    clock = Clock()
    n = notifier(clock, repeat_after=60)
    assert n.offer(event("roof_closed"))
    assert not n.offer(event("roof_closed"))
    assert not n.offer(event("roof_closed"))
    clock.t += 61
    assert n.compose(event("roof_closed"), 2).body.endswith("(2 more like this held back since the last one)")
    assert n.offer(event("roof_closed"))


def test_levels_map_to_apprise_types():
    assert [notify_type(level) for level in ("debug", "info", "warning", "error", "critical")] == [
        "info",
        "info",
        "warning",
        "failure",
        "failure",
    ]


def test_verdict_changes_become_events_sent_when_listed():
    from obsy.messages import SafetyReason, SafetyVerdict

    n = notifier(Clock(), kinds=["verdict_unsafe"])
    unsafe = SafetyVerdict(safe=False, reasons=[SafetyReason(quantity="rain", message="rain detected")])
    n._on_verdict("obsy/weather/safety", SafetyVerdict(safe=True))  # the first one seen is no change
    n._on_verdict("obsy/weather/safety", unsafe)
    n._on_verdict("obsy/weather/safety", SafetyVerdict(safe=True))  # verdict_safe: not listed
    sent = []
    while not n._queue.empty():
        sent.append(n._queue.get_nowait())
    assert [note.kind for note in sent] == ["verdict_unsafe"]
    assert sent[0].title == "Site: weather unsafe"
    assert "rain detected" in sent[0].body


def test_urls_from_a_secrets_file_with_comments():
    text = "# head\nntfy://ntfy.sh/x   # the app\n  # indented\npover://a@b#frag\njson://h:1/p json://h:2/q\n"
    urls = [u.get_secret_value() for u in NotificationsConfig(urls=text).urls]
    assert urls == ["ntfy://ntfy.sh/x", "pover://a@b#frag", "json://h:1/p", "json://h:2/q"]
    assert NotificationsConfig(urls="# only a comment: nothing is sent\n").urls == []
    assert "ntfy" not in repr(NotificationsConfig(urls=text))  # secrets stay out of logs and reprs
