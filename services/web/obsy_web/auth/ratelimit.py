"""Failed-login limit: a sliding window per username and per client address.

A username is blocked after ``attempts`` failures in the window; an address (which may
be a whole household behind one router) after ``attempts * address_factor``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class LoginLimiter:
    def __init__(self, attempts: int, window_s: float = 60.0, address_factor: int = 5) -> None:
        self.attempts = attempts
        self.address_factor = address_factor
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> float:
        """Seconds until another attempt is allowed for these keys (0 = allowed now)."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                failures = self._failures.get(key)
                if not failures:
                    continue
                while failures and now - failures[0] > self.window_s:
                    failures.popleft()
                limit = self.attempts * (self.address_factor if key.startswith("ip:") else 1)
                if len(failures) >= limit:
                    wait = max(wait, self.window_s - (now - failures[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._failures[key].append(now)
            if len(self._failures) > 10_000:  # forget quiet keys so memory stays bounded
                for key in [k for k, v in self._failures.items() if not v or now - v[-1] > self.window_s]:
                    del self._failures[key]

    def succeeded(self, username_key: str) -> None:
        with self._lock:
            self._failures.pop(username_key, None)
