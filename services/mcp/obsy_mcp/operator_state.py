"""The operator's last decision, kept on disk: a restart of the MCP never comes back more permissive.

What is kept (:class:`OperatorState`): the mode (auto, manual, off), "night ended" with the
observing night it was ended for and why, the latched alarm, and whether the MCP is still
waiting for an operator because it found no usable decision at its start.

The file is small JSON (``mcp.state_file``, default ``<data_dir>/mcp/state.json``), written on
every change atomically: a temporary file in the same folder, flushed and fsynced, renamed
over the old one, and the folder fsynced, so that a crash or a power cut leaves either the
old decision or the new one, never half of one. It is read once, when the MCP starts.

A file that cannot be used is never guessed at: :func:`load` raises :class:`StateFileError`
naming what is wrong, the caller sets the file aside (:func:`set_aside`, it is kept for
people to look at) and starts in the most conservative state (:func:`conservative`).

:class:`Keeper` does that for the controller: it restores the decision into the MCP's inputs
at start and saves it whenever it changed, reporting what it did as events.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from obsy.config import ObsyConfig
from obsy.files import write_atomic
from obsy.messages import EventKind, Mode

if TYPE_CHECKING:
    from obsy_mcp.inputs import Inputs
    from obsy_mcp.publishing import EventSink

log = logging.getLogger("obsy.mcp")

SCHEMA_VERSION = 1
#: Longest reason kept; a longer one in the file is an error (the file is ours, never that long).
MAX_REASON = 500


@dataclass(frozen=True)
class OperatorState:
    """The decisions that must survive a restart of the MCP."""

    mode: Mode = Mode.AUTO
    night_ended_for: date | None = None
    """The observing night (``obsy.astro.night_of``: local noon to noon) that was ended; None: not ended."""
    night_end_reason: str = ""
    alarm: str = ""
    """The latched alarm's reason; empty when there is none."""
    awaiting_operator: bool = False
    """Set when the MCP started without a usable saved decision: lifted by any operator decision."""

    def night_ended(self, tonight: date) -> bool:
        """True when the night was ended for ``tonight`` (or a later night: a clock set back)."""
        return self.night_ended_for is not None and self.night_ended_for >= tonight

    def decided(self, *, mode: Mode | None = None, start_night: bool = False) -> OperatorState:
        """This state after an operator's decision: a mode, or START (the night goes on)."""
        changed = replace(self, awaiting_operator=False)
        if mode is not None:
            changed = replace(changed, mode=mode)
        if start_night:
            changed = replace(changed, night_ended_for=None, night_end_reason="")
        return changed


class StateFileError(Exception):
    """The state file is missing or cannot be used; the message says which file and why."""

    def __init__(self, path: Path, problem: str, *, missing: bool = False) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem, self.missing = path, problem, missing


class _StateFile(BaseModel):
    """The file's schema: every key known, every value checked."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1]
    saved_at: datetime
    mode: Mode
    night_ended_for: date | None
    night_end_reason: str = Field(max_length=MAX_REASON)
    alarm: str = Field(max_length=MAX_REASON)
    awaiting_operator: bool


class StateFile:
    """One MCP's state file, and what it holds as far as this process knows (to write changes only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved: OperatorState | None = None
        self.failing = False  # the last save failed (reported once per episode)

    def load(self) -> OperatorState:
        self.saved = load(self.path)
        return self.saved

    def changed(self, state: OperatorState) -> bool:
        return state != self.saved

    def save(self, state: OperatorState) -> None:
        save(self.path, state)
        self.saved = state


def state_path(config: ObsyConfig) -> Path:
    """Where the MCP keeps the operator's decision (``mcp.state_file``, or under ``data_dir``)."""
    return config.mcp_state_file()


def conservative(tonight: date, why: str) -> OperatorState:
    """The most cautious state: auto mode, tonight ended, waiting for an operator (or the next night)."""
    return OperatorState(
        mode=Mode.AUTO, night_ended_for=tonight, night_end_reason=why, alarm="", awaiting_operator=True
    )


def load(path: Path) -> OperatorState:
    """The saved state; :class:`StateFileError` when the file is missing, unreadable or wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateFileError(path, "no saved operator decision (the file does not exist)", missing=True) from None
    except (OSError, UnicodeDecodeError) as error:
        raise StateFileError(path, f"cannot be read: {error}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise StateFileError(
            path, f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    try:
        saved = _StateFile.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'the file'}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise StateFileError(path, f"not a valid MCP state file: {problems}") from None
    return OperatorState(
        mode=saved.mode,
        night_ended_for=saved.night_ended_for,
        night_end_reason=saved.night_end_reason,
        alarm=saved.alarm,
        awaiting_operator=saved.awaiting_operator,
    )


def save(path: Path, state: OperatorState) -> None:
    """Write ``state`` atomically and durably (temporary file, fsync, rename, fsync of the folder)."""
    content = _StateFile(
        schema_version=SCHEMA_VERSION,
        saved_at=datetime.now(UTC),
        mode=state.mode,
        night_ended_for=state.night_ended_for,
        night_end_reason=state.night_end_reason[:MAX_REASON],
        alarm=state.alarm[:MAX_REASON],
        awaiting_operator=state.awaiting_operator,
    ).model_dump_json(indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, content + "\n", durable=True)


def set_aside(path: Path) -> Path:
    """Rename an unusable state file to ``<name>.corrupt-<UTC time>`` (never over an earlier one)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, aside)
    _fsync_folder(path.parent)
    return aside


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX: the directory entry is data of the folder)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Keeper:
    """The operator's last decision across restarts: restored into the inputs at start, saved on every change.

    A file that is missing or cannot be used restores the most conservative state (auto mode,
    tonight ended, waiting for an operator): nothing opens until an operator decides (START,
    OPEN, a mode) or the next observing night begins. A file that cannot be used is set aside
    (``.corrupt-<time>``) and reported before a new one is written.
    """

    def __init__(self, path: Path, inputs: Inputs, event: EventSink, *, default_reason: str) -> None:
        self.file = StateFile(path)
        self.inputs = inputs
        self._event = event
        self._default_reason = default_reason  # why a night ended, when the file does not say
        self._lock = threading.Lock()

    def restore(self, tonight: date) -> str:
        """Take up the decision from the file (call before the first state goes out); the latched alarm."""
        try:
            saved = self.file.load()
        except StateFileError as error:
            self._restore_conservatively(error, tonight)
            return ""
        inputs = self.inputs
        inputs.restore(saved, tonight, self._default_reason)
        parts = [f"mode {saved.mode.value}"]
        if inputs.night_aborted:
            parts.append(f"night {saved.night_ended_for} ended ({inputs.night_end_reason})")
        elif saved.night_ended_for is not None:
            parts.append(f"the night {saved.night_ended_for} that was ended is over: tonight ({tonight}) goes on")
        if saved.alarm:
            parts.append(f"alarm latched: {saved.alarm}")
        self._event(
            EventKind.STATE_RESTORED,
            "restored the operator's last decision: " + "; ".join(parts),
            level="warning" if saved.alarm else "info",
            data={
                "file": str(self.file.path),
                "mode": saved.mode.value,
                "night_aborted": inputs.night_aborted,
                "night_ended_for": None if saved.night_ended_for is None else saved.night_ended_for.isoformat(),
                "alarm": saved.alarm,
            },
        )
        return saved.alarm

    def _restore_conservatively(self, error: StateFileError, tonight: date) -> None:
        aside: str | None = None
        if not error.missing:
            try:
                aside = str(set_aside(self.file.path))
            except OSError as move_error:
                log.error("cannot set the unusable state file %s aside: %s", self.file.path, move_error)
        why = "no saved operator decision" if error.missing else "the saved operator decision is unusable"
        hold = f"{why}: not opening until an operator decides (START, OPEN or a mode) or the next night"
        self.inputs.restore(conservative(tonight, hold), tonight, hold)
        kept = f"; the file was kept as {aside}" if aside else ""
        self._event(
            EventKind.STATE_FILE_UNUSABLE,
            f"{error}{kept}. Restored the most cautious state: {hold}",
            level="warning" if error.missing else "error",
            data={
                "file": str(self.file.path),
                "problem": error.problem,
                "missing": error.missing,
                "set_aside": aside,
            },
        )

    def remember(self, alarm: str) -> None:
        """Write the decision (with the latched ``alarm``) when it changed, atomically and durably."""
        file = self.file
        with self._lock:
            current = self.inputs.operator_state(alarm=alarm)
            if not file.changed(current):
                return
            try:
                file.save(current)
            except OSError as error:
                if not file.failing:
                    file.failing = True
                    self._event(
                        EventKind.STATE_FILE_FAILED,
                        f"cannot save the operator's decision to {file.path}: {error}; "
                        "a restart now would not know it (trying again on every change)",
                        level="error",
                        data={"file": str(file.path), "error": str(error)},
                    )
                return
            if file.failing:
                file.failing = False
                self._event(EventKind.STATE_FILE_SAVED, f"the operator's decision is saved again to {file.path}")
