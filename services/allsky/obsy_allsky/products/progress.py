"""Progress of a long product job: log lines, the retained ``allsky/progress`` topic, a CLI bar.

A product builder calls its progress callback ``(done, total)`` after each frame it has
handled (used or skipped). :class:`JobProgress` is such a callback: it works out the percent
and the time left, and passes them on, throttled, to whoever listens: a log line every
``log_interval_s`` (and at the end), an :class:`~obsy.messages.AllskyProgress` message every
``publish_interval_s`` (and at the start and the end), and a drawing function for a terminal.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from obsy.messages import AllskyProgress

log = logging.getLogger("obsy.allsky.products")

#: ``(done, total)``: called by a product builder after each frame it has handled.
Progress = Callable[[int, int], None]
#: Receives each progress message to publish (the bus, or nothing).
Publisher = Callable[[AllskyProgress], None]
#: Draws ``(done, total, eta_s)`` on a terminal.
Drawer = Callable[[int, int, float | None], None]


class JobCancelledError(Exception):
    """Raised from the progress callback once the job's ``stop`` event is set (the service is stopping)."""


class JobProgress:
    """The progress callback of one job (``job`` on ``night``); it ends the job once ``stop`` is set."""

    def __init__(
        self,
        job: str,
        night: str,
        *,
        publish: Publisher | None = None,
        draw: Drawer | None = None,
        stop: threading.Event | None = None,
        log_interval_s: float = 10.0,
        publish_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.night = night
        self._publish = publish
        self._draw = draw
        self._stop = stop
        self._log_interval_s = log_interval_s
        self._publish_interval_s = publish_interval_s
        self._clock = clock
        self._started = clock()
        self._last_log = self._started
        self._last_publish: float | None = None
        self.done = 0
        self.total = 0
        self.note = ""  # what finish() was told: the note on the product, or why it failed

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far; None before the first frame is done."""
        if self.done <= 0 or self.total <= 0:
            return None
        elapsed = self._clock() - self._started
        return max(0.0, elapsed / self.done * (self.total - self.done))

    def message(self, status: str = "running", text: str = "", output: str | None = None) -> AllskyProgress:
        percent = 100.0 * self.done / self.total if self.total else (100.0 if status == "done" else 0.0)
        return AllskyProgress(
            job=self.job,
            night=self.night,
            status=status,
            done=self.done,
            total=self.total,
            percent=round(min(percent, 100.0), 1),
            eta_s=None if status != "running" else _rounded(self.eta_s()),
            message=text,
            output=output,
        )

    def start(self, total: int) -> None:
        self.total = total
        log.info("%s of %s: %d frames", self.job, self.night, total, extra={"event": "product_started"})
        self._send(self.message())

    def __call__(self, done: int, total: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise JobCancelledError(f"{self.job} of {self.night} stopped at {done}/{total}")
        self.done, self.total = done, total
        now = self._clock()
        if self._draw is not None:
            self._draw(done, total, self.eta_s())
        if now - self._last_log >= self._log_interval_s and done < total:
            self._last_log = now
            eta = self.eta_s()
            log.info(
                "%s of %s: %d/%d frames (%.0f %%), about %s left",
                self.job,
                self.night,
                done,
                total,
                100.0 * done / max(total, 1),
                _clock_text(eta),
                extra={"event": "product_progress"},
            )
        if self._last_publish is None or now - self._last_publish >= self._publish_interval_s:
            self._send(self.message())

    def finish(self, output: str | None, text: str = "") -> None:
        """The job ended with ``output`` written (None: nothing could be made; ``text`` says why)."""
        status = "done" if output is not None else "failed"
        self.note = text
        level = logging.INFO if output is not None else logging.WARNING
        elapsed = self._clock() - self._started
        log.log(
            level,
            "%s of %s %s in %.1f s: %s",
            self.job,
            self.night,
            status,
            elapsed,
            output or text,
            extra={"event": f"product_{status}"},
        )
        self._send(self.message(status, text, output))

    def _send(self, message: AllskyProgress) -> None:
        self._last_publish = self._clock()
        if self._publish is None:
            return
        try:
            self._publish(message)
        except Exception:  # progress is a courtesy: it never stops the job
            log.exception("could not publish progress", extra={"event": "progress_publish_failed"})


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def terminal_bar(label: str, width: int = 30, stream: TextIO | None = None) -> Drawer:
    """A :data:`Drawer` that redraws ``label [#####.....] done/total  pct  ETA m:ss`` on one line."""

    def draw(done: int, total: int, eta_s: float | None) -> None:
        out = stream or sys.stderr
        filled = width * done // max(total, 1)
        percent = 100 * done // max(total, 1)
        eta = f"  ETA {_clock_text(eta_s)}" if done < total else ""
        out.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:3d}%{eta}  ")
        if done >= total:
            out.write("\n")
        out.flush()

    return draw
