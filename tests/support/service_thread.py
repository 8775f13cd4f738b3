"""A service under OBSY's own runner (:class:`obsy.runner.ServiceRunner`) on a thread of the test process.

API::

    with ServiceThread(ImagingService, config) as running:   # the runner runs on a daemon thread
        running.runner.service ...                           # the service object itself
    running.exit_code                                        # what run() returned (None: still running)

Leaving the ``with`` (or :meth:`ServiceThread.stop`) asks the runner to stop, as SIGTERM does,
and waits up to ``stop_timeout`` seconds for the thread.
"""

from __future__ import annotations

import threading
from typing import Any, Self

from obsy.config import ObsyConfig
from obsy.runner import Service, ServiceRunner


class ServiceThread:
    def __init__(
        self,
        service: type[Service],
        config: ObsyConfig,
        *,
        stop_timeout: float = 30.0,
        name: str | None = None,
        **runner: Any,
    ) -> None:
        """``runner``: :class:`ServiceRunner`'s own options (``clock``, ``bus``)."""
        self.config = config
        self.stop_timeout = stop_timeout
        self.runner = ServiceRunner(service, config, **runner)
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, name=name or f"{service.name}-under-test", daemon=True)

    def _run(self) -> None:
        self.exit_code = self.runner.run()

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.runner.request_stop()
        self.thread.join(self.stop_timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
