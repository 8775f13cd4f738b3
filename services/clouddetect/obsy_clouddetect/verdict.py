"""Turning per-frame judgements into the published verdict: combining methods and debouncing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Debouncer:
    """The clear/cloudy verdict changes only after ``frames`` consecutive frames agree.

    Unknown (None) takes effect at once: it is never reported as clear. Leaving unknown
    for *cloudy* is also immediate (the cautious statement); leaving it for *clear* waits
    for ``frames`` agreeing frames like any other change.
    """

    frames: int
    clear: bool | None = None
    _candidate: bool | None = None
    _count: int = 0

    def update(self, observed: bool | None) -> bool | None:
        if observed is None or (self.clear is None and observed is False):
            self.clear, self._candidate, self._count = observed, None, 0
            return self.clear
        if observed == self.clear:
            self._candidate, self._count = None, 0
            return self.clear
        if observed == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = observed, 1
        if self._count >= self.frames:
            self.clear, self._candidate, self._count = observed, None, 0
        return self.clear
