"""One device step of a sequence: retried ``devices.retries`` times, an event for every attempt."""

from __future__ import annotations

import threading
from collections.abc import Callable

from obsy.messages import EventKind
from obsy_mcp.config import McpDevicesConfig
from obsy_mcp.devices import DeviceError, StepInterrupted
from obsy_mcp.ekos import EkosError
from obsy_mcp.publishing import EventSink


class Steps:
    """Runs the sequences' steps; the state is published before each attempt.

    ``stop_requested`` (a STOP waiting) ends the retries of an interruptible step; ``exiting``
    (the MCP stopping now) ends every wait between attempts, and a step failing then is cut
    off, not failed.
    """

    def __init__(
        self,
        settings: McpDevicesConfig,
        event: EventSink,
        publish_state: Callable[[], None],
        stop_requested: Callable[[], bool],
        exiting: threading.Event,
    ) -> None:
        self.settings = settings
        self._event = event
        self._publish_state = publish_state
        self._stop_requested = stop_requested
        self._exiting = exiting

    def run(
        self,
        name: str,
        action: Callable[[], None],
        *,
        critical: bool = True,
        interruptible: bool = False,
        retry: bool = True,
    ) -> bool:
        """Run one device step with retries; an event for each attempt; True when it succeeded."""
        attempts = 1 + (self.settings.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            data = {"step": name, "attempt": attempt}
            self._event(EventKind.DEVICE_ACTION, f"{name}: started (attempt {attempt})", data=data)
            self._publish_state()
            try:
                action()
            except StepInterrupted as error:
                self._event(
                    EventKind.DEVICE_ACTION, f"{name}: interrupted ({error})", level="warning", data={"step": name}
                )
                return False
            except (DeviceError, EkosError) as error:
                if self._exiting.is_set():
                    return False  # the MCP is exiting: the step was cut off, it did not fail
                level = "error" if attempt == attempts and critical else "warning"
                self._event(
                    EventKind.STEP_FAILED,
                    f"{name} failed (attempt {attempt} of {attempts}): {error}",
                    level=level,
                    data={"step": name, "attempt": attempt, "error": str(error)},
                )
                if attempt < attempts and not (interruptible and self._stop_requested()):
                    self._exiting.wait(self.settings.retry_delay)
                    continue
                return False
            self._event(EventKind.DEVICE_ACTION, f"{name}: done", data={"step": name, "attempt": attempt})
            return True
        return False
