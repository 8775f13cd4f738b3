"""Pydantic models for every JSON payload on the bus.

Every message carries ``schema_version`` and a timezone-aware UTC ``timestamp``.
A consumer validates what it receives against these models; what fails is logged,
counted and dropped by :mod:`obsy.bus` (it never reaches a handler).

Compatibility rule: adding an optional field keeps ``schema_version``; renaming,
removing or changing the meaning of a field bumps it. Unknown extra fields are
ignored so that an older consumer can read a newer producer's additive changes;
a message whose ``schema_version`` is newer than the model's is rejected.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


def utc_now() -> datetime:
    return datetime.now(UTC)


#: A wall clock: the time now, timezone-aware UTC. Every service has one, ``Service.clock`` (``utc_now``
#: unless the runner is handed another: tests drive time with theirs).
Clock = Callable[[], datetime]


#: How much of a bad input is ever echoed back (events, answers, logs), in characters.
EXCERPT_CHARS = 48


def excerpt(data: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped excerpt of untrusted input, safe for a log line, an event or a web page.

    Control characters, quotes and anything outside ASCII are backslash-escaped, so an excerpt
    cannot break a log line or forge another one; a longer input ends in ``...`` and its size
    in bytes. Never put a bad input anywhere whole: put ``excerpt(input)``.
    """
    raw = data if isinstance(data, bytes) else data[: limit + 1].encode("utf-8", errors="surrogatepass")
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", errors="surrogatepass"))
    text = raw[: limit * 4].decode("utf-8", errors="backslashreplace")
    shown = text[:limit].encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{shown}"' + (f"... ({size} bytes)" if len(text) > limit else "")


class Message(BaseModel):
    """Base of every bus payload."""

    SCHEMA_VERSION: ClassVar[int] = 1

    model_config = ConfigDict(extra="ignore", frozen=False, ser_json_inf_nan="null")

    schema_version: int = 1
    timestamp: datetime = Field(default_factory=utc_now)

    @field_validator("schema_version")
    @classmethod
    def _supported_version(cls, value: int) -> int:
        if value < 1 or value > cls.SCHEMA_VERSION:
            raise ValueError(f"schema_version {value} is not supported (this build reads up to {cls.SCHEMA_VERSION})")
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must carry a time zone (UTC, ISO 8601 with 'Z' or '+00:00')")
        return value.astimezone(UTC)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def validation_problems(
    error: ValidationError | Sequence[Mapping[str, Any]],
    limit: int = 5,
    *,
    skip: Collection[str] = (),
    whole: str = "payload",
) -> str:
    """The first ``limit`` problems of a pydantic error, one ``where: what`` each, never echoing input.

    The one formatter for every validation error OBSY reports (bus payloads, commands, CLI
    files, the web API). ``error`` is the exception or its ``errors()`` list; location parts in
    ``skip`` (the web's ``body``) are left out, and a problem with no location is about ``whole``.
    Locations can hold keys taken from the input (a dict's keys): those are excerpted.
    """
    errors = list(error.errors() if isinstance(error, ValidationError) else error)

    def part(p: object) -> str:
        return str(p) if len(str(p)) <= EXCERPT_CHARS else excerpt(str(p))

    lines = []
    for err in errors[:limit]:
        where = ".".join(part(p) for p in err.get("loc", ()) if str(p) not in skip) or whole
        lines.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(lines) + more


# --- every service -------------------------------------------------------------


class ServiceHealth(Message):
    """Retained heartbeat each service publishes on ``<prefix>/<service>/health``."""

    service: str
    status: Literal["ok", "degraded", "failing"] = "ok"
    version: str = ""
    host: str = ""
    pid: int = 0
    uptime_s: float = 0.0
    heartbeat_interval_s: float
    invalid_messages: int = 0
    details: dict[str, Any] = Field(default_factory=dict)


class EventKind(StrEnum):
    """Every ``Event.kind`` an OBSY service emits (docs/topics.md, "Event kinds" lists them; a test checks).

    Emit sites name a member, never a free string (a test over the source checks that too), so a
    consumer can match on these. ``Event.kind`` still takes a kind that is not here (see :class:`Event`).
    """

    # --- commands and their answers (every service: one shape, :class:`CommandAnswer`) ---
    COMMAND_ACCEPTED = "command_accepted"  # a command was accepted (data: the CommandAnswer)
    COMMAND_REJECTED = "command_rejected"  # a command was rejected, with reasons (data: the CommandAnswer)
    COMMAND = "command"  # web: the audit record of a command it sent for one of its users
    # --- mcp ---
    TRANSITION = "transition"  # the state machine changed state
    DEVICE_ACTION = "device_action"  # one step of a roof or mount sequence
    STEP_FAILED = "step_failed"  # a sequence step failed or timed out
    ALARM = "alarm"  # an alarm was raised (latched until cleared)
    ALARM_CLEARED = "alarm_cleared"  # the alarm was cleared
    ROOF_CLOSING = "roof_closing"  # the closing order started (with the unsafe reasons, when unsafe)
    ROOF_CLOSED = "roof_closed"  # the roof is confirmed closed
    ROOF_OPENED = "roof_opened"  # the roof is confirmed open
    ROOF_MOVED_OUTSIDE = "roof_moved_outside"  # the roof moved without OBSY asking: followed, not fought
    CLOSING_UNPARKED = "closing_unparked"  # the roof closed with the mount not confirmed parked
    NIGHT_STARTED = "night_started"  # the Sun went below the MCP's limit
    NIGHT_ENDED = "night_ended"  # the night ended (Sun up, Ekos finished or aborted, ABORT, roof closed outside)
    NIGHT_RESUMED = "night_resumed"  # a night that was ended is observed again (START, OPEN)
    DEFERRED_COMMAND_APPLIED = "deferred_command_applied"  # a command kept during a closing was applied after it
    DEFERRED_COMMAND_REJECTED = "deferred_command_rejected"  # a command kept during a closing was refused after it
    DEFERRED_COMMANDS_DROPPED = "deferred_commands_dropped"  # STOP dropped the commands kept for after the closing
    DEVICES_READ_BACK = "devices_read_back"  # roof and mount read back from INDI after a (re)start
    INDI_RECONNECTED = "indi_reconnected"  # indiserver is back: the devices are read again
    BROKER_LOST = "broker_lost"  # the MCP lost the broker (it closes after the grace time)
    BROKER_RETURNED = "broker_returned"  # the broker is back, with what happened while it was gone
    STATE_RESTORED = "state_restored"  # the operator's last decision read back from the state file
    STATE_FILE_SAVED = "state_file_saved"  # the state file was written again after failing
    STATE_FILE_FAILED = "state_file_failed"  # the state file could not be written
    STATE_FILE_UNUSABLE = "state_file_unusable"  # the state file could not be read: the cautious default is used
    EKOS_SCHEDULER = "ekos_scheduler"  # the Ekos scheduler started, stopped or changed status
    EKOS_SCHEDULE_FINISHED = "ekos_schedule_finished"  # the Ekos schedule has finished its jobs
    EKOS_SCHEDULER_ABORTED = "ekos_scheduler_aborted"  # the Ekos scheduler aborted
    EKOS_UNREACHABLE = "ekos_unreachable"  # KStars/Ekos did not answer on D-Bus
    SHUTDOWN_CLOSING = "shutdown_closing"  # the MCP stops: it finishes a closing first
    SHUTDOWN_CUT_SHORT = "shutdown_cut_short"  # the closing at shutdown did not finish in time
    SHUTDOWN_ROOF_LEFT = "shutdown_roof_left"  # the MCP stopped with the roof not closed
    SERVICE_RESTARTED = "service_restarted"  # supervision restarted a silent or failing service's container
    SUPERVISION_ALARM = "supervision_alarm"  # supervision cannot restart a service (no Docker, too many restarts)
    SUPERVISION_FAILED = "supervision_failed"  # restarting a container failed
    # --- weather ---
    SIMULATION_APPLIED = "simulation_applied"  # old weather services: a simulate command applied
    SIMULATION_REFUSED = "simulation_refused"  # old weather services: a simulate command refused
    # --- scheduler ---
    PLAN = "plan"  # a night was planned
    # --- allsky ---
    CAMERA_FAILED = "camera_failed"  # the allsky camera failed; capture retries
    CAMERA_RECOVERED = "camera_recovered"  # the allsky camera works again
    FRAME_FAILED = "frame_failed"  # an allsky frame could not be processed
    FRAME_CORRUPT = "frame_corrupt"  # the camera delivered an unreadable frame
    ENCODE_FAILED = "encode_failed"  # a processed frame could not be encoded
    ENCODE_RECOVERED = "encode_recovered"  # encoding works again
    STORAGE_FAILED = "storage_failed"  # a frame could not be stored
    STORAGE_RECOVERED = "storage_recovered"  # storing works again
    STREAKS_FAILED = "streaks_failed"  # meteor/satellite detection failed on a frame
    STREAKS_RECOVERED = "streaks_recovered"  # streak detection works again
    SETTING_OUT_OF_RANGE = "setting_out_of_range"  # a camera setting outside the limits: one within used
    DARKS_STARTED = "darks_started"  # a capture of master darks started
    DARKS_DONE = "darks_done"  # master darks captured
    DARKS_FAILED = "darks_failed"  # the capture of master darks failed
    # --- imaging ---
    FRAME_QUARANTINED = "frame_quarantined"  # a frame was set aside with a reason
    STORAGE_FULL = "storage_full"  # the repository's disk is full: frames wait in the capture folder
    MASTER_BUILT = "master_built"  # a calibration master was built
    MASTER_EXISTS = "master_exists"  # a master of exactly these frames exists already
    MASTER_FAILED = "master_failed"  # a master could not be built
    MASTERS_COMMAND = "masters_command"  # the result of a masters command (what was built or pinned)
    FRAME_UNUSABLE = "frame_unusable"  # a calibration frame cannot be used for a master
    CALIBRATION_FAILED = "calibration_failed"  # a light could not be calibrated
    LIGHTS_RECALIBRATED = "lights_recalibrated"  # lights calibrated again for a newly chosen master
    LIVE_STACK_LEFT_OUT = "live_stack_left_out"  # a light was left out of the live stack
    LIVE_STACK_REBUILD_FAILED = "live_stack_rebuild_failed"  # a live stack could not be rebuilt
    NIGHT_STACK_BUILT = "night_stack_built"  # a night stack was built
    NIGHT_STACK_SKIPPED = "night_stack_skipped"  # a night stack was not built, and why
    PROJECT_STACK_BUILT = "project_stack_built"  # a project stack was built
    PROJECT_STACK_SKIPPED = "project_stack_skipped"  # a project stack was not built, and why
    PROJECT_COLOUR_BUILT = "project_colour_built"  # a project's colour image was built
    PROJECT_COLOUR_SKIPPED = "project_colour_skipped"  # a project's colour image was not built, and why
    PHOTOMETRY_FAILED = "photometry_failed"  # a light could not be measured
    PHOTOMETRY_REPORT_LEFT_OUT = "photometry_report_left_out"  # a measurement was left out of the AAVSO report
    TRANSIT_FITTED = "transit_fitted"  # an exoplanet transit was fitted
    TRANSIT_FAILED = "transit_failed"  # a transit could not be fitted
    TRANSIT_FILES_FAILED = "transit_files_failed"  # a transit's report, plot or points could not be written
    TRANSIT_EPHEMERIDES_UNUSABLE = "transit_ephemerides_unusable"  # the transit ephemerides file cannot be used
    PASS_FAILED = "pass_failed"  # an imaging worker's pass failed unexpectedly (a bug; it goes on)
    CALIBRATION_PASS_FAILED = "calibration_pass_failed"  # the calibration pass failed unexpectedly
    LIVE_STACK_PASS_FAILED = "live_stack_pass_failed"  # the live stack pass failed unexpectedly
    PHOTOMETRY_PASS_FAILED = "photometry_pass_failed"  # the photometry pass failed unexpectedly
    NIGHT_STACK_PASS_FAILED = "night_stack_pass_failed"  # the night stack pass failed unexpectedly
    PROJECT_STACK_PASS_FAILED = "project_stack_pass_failed"  # the project stack pass failed unexpectedly
    TRANSIT_PASS_FAILED = "transit_pass_failed"  # the transit pass failed unexpectedly
    # --- web ---
    NOTIFICATION_FAILED = "notification_failed"  # a notification could not be sent (said once until one is)
    NOTIFICATION_RESTORED = "notification_restored"  # notifications are sent again
    SERVICE_OFFLINE = "service_offline"  # a service went offline (made by the web's notifier, not on the bus)
    VERDICT_UNSAFE = "verdict_unsafe"  # the weather verdict turned unsafe (the web's notifier, not on the bus)
    VERDICT_SAFE = "verdict_safe"  # the weather verdict is safe again (the web's notifier, not on the bus)
    # --- every service that writes data (obsy.diskspace) ---
    DISK_OK = "disk_ok"  # a watched folder's free space is back above its levels
    DISK_WARNING = "disk_warning"  # a watched folder's free space fell below the warning level
    DISK_CRITICAL = "disk_critical"  # a watched folder's free space fell below the critical level


class Event(Message):
    """A non-retained event on ``<prefix>/<service>/events``.

    ``kind`` is an :class:`EventKind` when it is one of OBSY's kinds; a kind this build does not
    know (a newer or older peer's, or one stored long ago) is kept as the plain string rather than
    rejected: events are stored and shown as history and notifications, and dropping a newer
    service's event (the bus drops what fails validation) would lose it for everyone, while a
    consumer that matches on a kind simply does not match an unknown one. Emitting one is what
    the enum prevents: every emit site names an :class:`EventKind` member (a test checks).
    """

    service: str
    kind: EventKind | str = Field(description="machine-readable event type (EventKind), e.g. 'transition', 'alarm'")
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, EventKind):
            try:
                return EventKind(value)
            except ValueError:
                return value  # not one of ours (another version's): kept, see the class docstring
        return value

    @property
    def known_kind(self) -> bool:
        """Whether ``kind`` is one of this build's :class:`EventKind` members."""
        return isinstance(self.kind, EventKind)


# --- commands (every service) ---------------------------------------------------


class OriginKind(StrEnum):
    WEB = "web"
    HOME_ASSISTANT = "home_assistant"
    CLI = "cli"
    SERVICE = "service"
    UNKNOWN = "unknown"


class CommandOrigin(BaseModel):
    """Who sent a command: it rides in the payload (MQTT 3.1.1 has no user properties)."""

    model_config = ConfigDict(extra="ignore")

    kind: OriginKind = OriginKind.UNKNOWN
    user: str | None = Field(default=None, max_length=64, description="web account, or the OS user of a CLI")
    role: str | None = Field(default=None, max_length=32, description="the web account's role")
    service: str | None = Field(default=None, max_length=64, description="the sending service, for kind service")
    host: str | None = Field(default=None, max_length=255, description="the machine a CLI ran on")

    @classmethod
    def command_line(cls) -> CommandOrigin:
        """The origin of a command typed by the OS user running this process (an ``obsy-*`` CLI)."""
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no user name for this uid (a bare container)
            user = f"uid {os.getuid()}"
        return cls(kind=OriginKind.CLI, user=user[:64], host=socket.gethostname()[:255])

    @classmethod
    def of_service(cls, name: str) -> CommandOrigin:
        """The origin of a command one OBSY service sends another."""
        return cls(kind=OriginKind.SERVICE, service=name)

    def as_data(self) -> dict[str, Any]:
        """The origin as an event's ``data["origin"]``: only the fields that are set."""
        return self.model_dump(mode="json", exclude_none=True)

    def describe(self) -> str:
        """One phrase for an event message: 'web user ada, role operator', 'Home Assistant', ..."""
        who = {
            OriginKind.WEB: "web user",
            OriginKind.HOME_ASSISTANT: "Home Assistant",
            OriginKind.CLI: "command line",
            OriginKind.SERVICE: "service",
            OriginKind.UNKNOWN: "an unnamed sender",
        }[self.kind]
        name = self.service if self.kind is OriginKind.SERVICE else self.user
        if name:
            who += f" {name}" + (f"@{self.host}" if self.host else "")
        return who + (f", role {self.role}" if self.role else "")


class InvalidCommandError(ValueError):
    """A command payload that is neither a plain value nor a valid :class:`Command`."""


class Command(Message):
    """A command on ``<p>/<service>/<thing>/set`` with its origin (docs/topics.md, "Commands").

    On the wire either the plain value (``OPEN``: origin unknown, as before origins existed)
    or this model as JSON: ``{"value": "OPEN", "origin": {"kind": "web", "user": "ada",
    "role": "operator"}}``. An origin that does not validate never blocks the command (a
    CLOSE must always get through): it is recorded as unknown.
    """

    value: str = Field(min_length=1, max_length=32)
    origin: CommandOrigin = Field(default_factory=CommandOrigin)
    request_id: str | None = Field(
        default=None, max_length=64, description="the sender's, repeated in the answer (CommandAnswer.request_id)"
    )

    @field_validator("origin", mode="wrap")
    @classmethod
    def _origin_never_blocks(cls, value: Any, handler: Any) -> CommandOrigin:
        try:
            return handler(value)
        except ValueError:  # pydantic's ValidationError is a ValueError
            return CommandOrigin()

    @field_validator("request_id", mode="wrap")
    @classmethod
    def _request_id_never_blocks(cls, value: Any, handler: Any) -> str | None:
        try:
            return handler(value)
        except ValueError:  # too long, not a string: the command still goes through, unmatched
            return None

    @classmethod
    def parse(cls, payload: str) -> Command:
        """The command in ``payload``, plain or JSON; :class:`InvalidCommandError` says what is wrong."""
        text = payload.strip()
        try:
            if text.startswith("{"):
                return cls.model_validate_json(text)
            return cls(value=text)
        except ValidationError as exc:
            raise InvalidCommandError(f"not a command ({validation_problems(exc, 3)}): {excerpt(text)}") from None


def request_id_of(payload: object) -> str | None:
    """The ``request_id`` of a command that did not validate, to repeat in its rejection: from a dict or
    a JSON object's text, and only a string of at most 64 characters (else None, never echoed whole)."""
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    rid = payload.get("request_id") if isinstance(payload, Mapping) else None
    return rid if isinstance(rid, str) and 0 < len(rid) <= 64 else None


class CommandName(BaseModel):
    """Which command an answer is about: the command topic's ``thing`` and a short ``value``."""

    model_config = ConfigDict(extra="ignore")

    thing: str = Field(description="the command topic under the service: roof, mode, night, masters, simulate...")
    value: str = Field(default="", description="what it asked, in a word or a few: OPEN, build, rain...")


class CommandAnswer(BaseModel):
    """The one answer to every command, whatever the service: the ``data`` of an :class:`Event` of kind
    ``command_accepted`` or ``command_rejected`` on ``<p>/<service>/events`` (docs/topics.md, "Commands").

    ``request_id`` repeats the command's (empty when it had none, or when an unreadable payload
    had none to read); ``reasons`` say why a command was rejected; ``origin`` who sent it
    (:meth:`CommandOrigin.as_data`). What a command then does is echoed on the service's state
    topics as before (the imaging states that answer a command repeat its ``request_id``). Services add their own fields
    next to these (the MCP's ``note`` and ``deferred``, the weather's ``values``): extra fields are kept.
    """

    model_config = ConfigDict(extra="allow")

    command: CommandName
    accepted: bool
    request_id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    note: str = Field(default="", description="what follows, when accepted: 'closing for the night'")
    origin: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(
        cls,
        thing: str,
        value: str,
        *,
        accepted: bool,
        origin: CommandOrigin | None,
        request_id: object = None,
        reasons: Sequence[str] = (),
        note: str = "",
        **extra: Any,
    ) -> CommandAnswer:
        """The answer to ``thing value`` from ``origin``; a ``request_id`` that is not a short string
        (taken from a payload that did not validate) is left out rather than echoed."""
        rid = request_id if isinstance(request_id, str) and 0 < len(request_id) <= 64 else None
        return cls(
            command=CommandName(thing=thing, value=value),
            accepted=accepted,
            request_id=rid,
            reasons=list(reasons),
            note=note,
            origin=(origin or CommandOrigin()).as_data(),
            **extra,
        )

    @classmethod
    def from_event(cls, event: Event | Mapping[str, Any]) -> CommandAnswer | None:
        """The answer an event carries; None for another kind of event, or a command event too old to say
        (an MCP before the one contract: its data has no ``accepted``, the kind says it)."""
        kind = event.kind if isinstance(event, Event) else event.get("kind")
        data = event.data if isinstance(event, Event) else event.get("data")
        if kind not in (EventKind.COMMAND_ACCEPTED, EventKind.COMMAND_REJECTED) or not isinstance(data, Mapping):
            return None
        try:
            return cls.model_validate({**data, "accepted": kind == EventKind.COMMAND_ACCEPTED})
        except ValidationError:
            return None

    def describe(self) -> str:
        """``roof OPEN rejected (from web user ada, role operator): reasons`` (the event's message)."""
        verb = "accepted" if self.accepted else "rejected"
        origin = CommandOrigin.model_validate(self.origin)
        text = f"{self.command.thing} {self.command.value}".strip() + f" {verb} (from {origin.describe()})"
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        elif self.note:
            text += ": " + self.note
        return text

    def as_event(self, service: str, message: str | None = None) -> Event:
        """The answer as ``service``'s event: info when accepted, warning when rejected."""
        return Event(
            service=service,
            kind=EventKind.COMMAND_ACCEPTED if self.accepted else EventKind.COMMAND_REJECTED,
            level="info" if self.accepted else "warning",
            message=message or self.describe(),
            data=self.model_dump(mode="json", exclude={"accepted"}) | {"accepted": self.accepted},
        )


# --- weather -------------------------------------------------------------------


#: Every quantity the weather service may publish (units and meaning: docs/weather.md).
WEATHER_QUANTITIES = (
    "ambient_temperature",
    "humidity",
    "dew_point",
    "dew_point_margin",
    "pressure",
    "wind_speed",
    "wind_gust",
    "wind_direction",
    "rain",
    "rain_rate",
    "sky_temperature",
    "sky_minus_ambient",
    "sky_brightness",
    "cloud_cover",
)


class Reading(BaseModel):
    """One normalised quantity with where it came from and how old it is."""

    model_config = ConfigDict(extra="ignore")

    value: float | bool | None
    unit: str = ""
    source: str = ""
    measured_at: datetime | None = None
    age_s: float | None = Field(default=None, description="seconds between measured_at and the message's timestamp")
    stale: bool = Field(default=False, description="older than its source's max_age: not trusted for safety")


class WeatherState(Message):
    """All readings, keyed by quantity name (ambient_temperature, humidity, ...)."""

    readings: dict[str, Reading] = Field(default_factory=dict)


class SafetyReason(BaseModel):
    model_config = ConfigDict(extra="ignore")

    quantity: str
    message: str
    value: float | bool | None = None
    limit: float | bool | None = None


class SafetyVerdict(Message):
    """``<prefix>/weather/safety``: safe or not, with every reason that failed."""

    safe: bool
    reasons: list[SafetyReason] = Field(default_factory=list)
    since: datetime = Field(default_factory=utc_now)
    fine_since: datetime | None = Field(
        default=None,
        description="when every condition last became fine: the start of the safe delay (empty while one is not)",
    )


class WeatherSimulationAction(StrEnum):
    RAIN = "rain"
    CLEAR = "clear"
    WIND = "wind"
    #: Clouds on the sky simulator's allsky camera (SIM_CLOUDS), not on the weather simulator.
    CLOUDS = "clouds"


class SimulatedCloudKind(StrEnum):
    """The sky simulator's cloud kinds (its SIM_CLOUDS switches, lower case)."""

    CLEAR = "clear"
    SCATTERED = "scattered"
    BANK = "bank"
    VEIL = "veil"
    OVERCAST = "overcast"


class WeatherSimulationCommand(Message):
    """``<prefix>/weather/simulate/set``: change an INDI weather simulator's weather (demonstrations).

    The weather service obeys only with ``weather.allow_simulation`` on and a simulator as
    its INDI source; either way it answers with a :class:`CommandAnswer` event (``command_accepted``
    once the values are set, or ``command_rejected``) whose ``data.request_id`` repeats this one's.
    """

    action: WeatherSimulationAction
    wind_speed: float | None = Field(
        default=None, ge=0, le=100, description="km/h (the simulator allows 0-100); for wind"
    )
    cloud_kind: SimulatedCloudKind | None = Field(
        default=None, description="for clouds: the sky simulator's cloud kind (scattered when only cover is given)"
    )
    cover: float | None = Field(default=None, ge=0, le=100, description="percent; for clouds of the scattered kind")
    request_id: str | None = Field(default=None, max_length=64)
    user: str | None = Field(default=None, max_length=64, description="who asked (the web service's account)")
    origin: CommandOrigin | None = Field(default=None, description="who sent it; empty: unknown")

    @model_validator(mode="after")
    def _wind_needs_speed(self) -> WeatherSimulationCommand:
        if self.action is WeatherSimulationAction.WIND and self.wind_speed is None:
            raise ValueError("the wind action needs wind_speed (km/h)")
        if self.action is WeatherSimulationAction.CLOUDS:
            if self.cloud_kind is None and self.cover is None:
                raise ValueError("the clouds action needs cloud_kind or cover (percent, for scattered clouds)")
            if self.cloud_kind is None:
                self.cloud_kind = SimulatedCloudKind.SCATTERED
            if self.cover is not None and self.cloud_kind is not SimulatedCloudKind.SCATTERED:
                raise ValueError(f"cover is for scattered clouds, not {self.cloud_kind.value}")
        elif self.cloud_kind is not None or self.cover is not None:
            raise ValueError(f"cloud_kind and cover are for the clouds action, not {self.action.value}")
        return self


# --- clouddetect ---------------------------------------------------------------


class CloudState(Message):
    cloud_cover: float | None = Field(default=None, ge=0, le=100, description="percent; None = unknown")
    label: str = "unknown"
    confidence: float | None = Field(default=None, ge=0, le=1)
    clear: bool | None = Field(default=None, description="debounced verdict; None = unknown (never clear)")
    methods: list[str] = Field(default_factory=list)
    frame_id: str | None = None
    frame_time: datetime | None = None
    cloud_map_url: str | None = None
    frame_age_s: float | None = Field(default=None, description="age of the judged frame when published")
    transmission: float | None = Field(default=None, ge=0, description="mean sky transmission, 1 = clear")
    stars_expected: int | None = None
    stars_seen: int | None = None
    reason: str = Field(default="", description="why the state is unknown, when it is")


# --- allsky --------------------------------------------------------------------


class AllskyProgress(Message):
    """Progress of a long allsky job (a night's product), retained on ``<p>/allsky/progress``."""

    job: str = Field(description="keogram, startrails, timelapse, panorama, summary, thumbnails")
    night: str = Field(description="observing night, YYYY-MM-DD of the evening")
    status: Literal["running", "done", "failed"] = "running"
    done: int = Field(default=0, ge=0, description="frames handled so far")
    total: int = Field(default=0, ge=0)
    percent: float = Field(default=0.0, ge=0, le=100)
    eta_s: float | None = Field(default=None, ge=0, description="seconds left at the pace so far")
    message: str = Field(default="", description="why it failed, or what was skipped")
    output: str | None = Field(default=None, description="the file written, relative to the data directory")


class AllskyFrame(Message):
    """Metadata of one processed frame; the image itself is reached through ``url``."""

    frame_id: str
    night: str = Field(description="observing night, YYYY-MM-DD of the evening")
    exposure_s: float = Field(ge=0)
    gain: float | None = None
    stars: int | None = Field(default=None, ge=0)
    sqm: float | None = None
    sun_altitude: float | None = None
    moon_altitude: float | None = None
    moon_phase: float | None = Field(default=None, ge=0, le=1)
    url: str
    fits_url: str | None = None
    object_url: str | None = Field(
        default=None,
        description="where the picture is kept for the fleet's centre with upload.target s3 (s3://<bucket>/<key>; "
        "there once the site's uploader has sent it); None otherwise",
    )
    clean_url: str | None = Field(
        default=None,
        description="the same picture without the overlay (where one is drawn): what clouddetect judges",
    )
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    mode: str | None = Field(default=None, description="exposure profile: day, night, twilight or moon")


class AllskyStreak(Message):
    """A meteor or satellite track found in a night frame; the crop is reached through ``crop_url``.

    Pixel positions are in the raw frame (full resolution, top row first); alt/az (degrees, azimuth
    from north through east) where the service knows its lens model.
    """

    frame_id: str
    night: str = Field(description="observing night, YYYY-MM-DD of the evening")
    kind: Literal["meteor", "satellite"] = Field(description="satellite includes aircraft (blinking lights)")
    start: tuple[float, float] = Field(description="x, y in pixels of the track's first end")
    end: tuple[float, float] = Field(description="x, y in pixels of the track's other end")
    start_altaz: tuple[float, float] | None = None
    end_altaz: tuple[float, float] | None = None
    length_px: float = Field(ge=0)
    length_deg: float | None = Field(default=None, ge=0)
    snr: float = Field(description="the track's mean excess over its surroundings, in its own noise")
    steadiness: float = Field(description="scatter of the brightness along the track (std / mean)")
    fade: float = Field(description="the dimmer end's brightness over the peak")
    blinks: int = Field(default=0, ge=0, description="dips between bright stretches (an aircraft's lights)")
    exposure_s: float = Field(ge=0)
    crop_url: str | None = Field(default=None, description="file:// URL of the crop (PNG) around the track")


class AllskyState(Message):
    """The allsky service's retained state: the camera's health and the last frame's figures."""

    camera: Literal["starting", "ok", "failing", "lost"] = "starting"
    camera_error: str | None = None
    camera_failures: int = Field(default=0, ge=0)
    backend: str = ""
    mode: str | None = Field(default=None, description="exposure profile: day, night, twilight or moon")
    frame_id: str | None = None
    exposure_s: float | None = Field(default=None, ge=0)
    gain: float | None = None
    stars: int | None = Field(default=None, ge=0)
    sqm: float | None = None
    dark: bool | None = Field(default=None, description="a master dark was subtracted from the last frame")
    url: str | None = None
    storage_error: str | None = None
    corrupt_frames: int = Field(default=0, ge=0, description="images from the camera that could not be decoded")
    bad_pixels: int | None = Field(
        default=None, ge=0, description="pixels the bad-pixel map replaced in the last frame"
    )


class AllskyDarksCommand(Message):
    """Capture master darks now, with the lens capped (``<p>/allsky/darks/set``).

    Empty ``exposures`` means the exposures of the last frame's bracket; empty ``gain`` the
    last frame's gain. Masters are taken at the sensor's current temperature.
    """

    exposures: list[float] = Field(default_factory=list, max_length=20)
    count: int | None = Field(default=None, ge=1, le=200, description="frames per master; empty: camera.dark_count")
    gain: float | None = Field(default=None, ge=0)
    origin: CommandOrigin | None = Field(default=None, description="who sent it; empty: unknown")
    request_id: str | None = Field(default=None, max_length=64, description="repeated in the answer event")

    @field_validator("exposures")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0 < v <= 3600]
        if bad:
            raise ValueError(f"exposures must be in (0, 3600] s, got {bad}")
        return values


class AllskyDarksState(Message):
    """Progress and result of the last darks command (retained on ``<p>/allsky/darks/state``)."""

    status: Literal["idle", "running", "done", "failed"] = "idle"
    exposures: list[float] = Field(default_factory=list)
    count: int = Field(default=0, ge=0)
    gain: float | None = None
    temperature_c: float | None = None
    done: int = Field(default=0, ge=0, description="dark frames taken so far")
    total: int = Field(default=0, ge=0)
    masters: list[str] = Field(default_factory=list, description="files written to the dark library")
    hot_pixels: int | None = Field(default=None, ge=0, description="pixels in the rebuilt bad-pixel map")
    error: str | None = None


# --- imaging -------------------------------------------------------------------


class ImagingFrame(Message):
    """One frame registered in the imaging repository (``<p>/imaging/frames``, not retained)."""

    frame_id: int = Field(description="the frame's id in the imaging database")
    sha256: str = Field(description="content hash of the file: the frame's identity")
    path: str = Field(description="the frame in the repository, relative to its root")
    source: str = Field(description="the file as the capture program wrote it")
    frame_type: str = Field(description="light, dark, bias, flat, dark_flat")
    night: str = Field(description="observing night, YYYY-MM-DD of the evening")
    target: str | None = None
    filter: str | None = None
    exposure_s: float | None = Field(default=None, ge=0)
    camera: str | None = None
    binning: str | None = Field(default=None, description="e.g. 1x1")
    gain: float | None = None
    offset: float | None = None
    temperature_c: float | None = None
    date_obs: datetime | None = Field(default=None, description="exposure start, UTC")
    jd_mid: float | None = Field(default=None, description="mid-exposure Julian date (UTC)")
    bjd_tdb_mid: float | None = Field(default=None, description="mid-exposure barycentric Julian date (TDB)")
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    # The grade of a light (empty for calibration frames, or with grading off):
    accepted: bool | None = Field(default=None, description="passed every grading limit")
    rejected_because: list[str] = Field(default_factory=list, description="each failed limit, for people")
    stars: int | None = Field(default=None, ge=0)
    fwhm_px: float | None = None
    fwhm_arcsec: float | None = None
    hfr_px: float | None = None
    eccentricity: float | None = None
    background: float | None = None
    noise: float | None = None
    snr: float | None = None


class FrameType(StrEnum):
    LIGHT = "Light"
    DARK = "Dark"
    BIAS = "Bias"
    FLAT = "Flat"


class AcquiredLights(BaseModel):
    """How many accepted lights (or calibration frames) the repository holds for one target, filter,
    exposure and frame type. Calibration frames are not graded: every one registered counts."""

    model_config = ConfigDict(extra="ignore")

    target: str = Field(min_length=1, max_length=200, description="as the frames' OBJECT header gives it")
    filter: str | None = Field(default=None, max_length=100)
    exposure_s: float = Field(ge=0, description="seconds; a bias may say 0")
    accepted: int = Field(ge=0)
    frame_type: FrameType = FrameType.LIGHT


class ImagingAcquired(Message):
    """Accepted lights of every target, per filter and exposure (``<p>/imaging/acquired``, retained).

    The whole repository, all nights: each message replaces the one before. The web service
    counts them into the matching exposure plans' ``acquired`` (see docs/web.md).
    """

    lights: list[AcquiredLights] = Field(default_factory=list, max_length=10000)


class ImagingQuarantined(Message):
    """A file that could not be taken, set aside with its reason (``<p>/imaging/quarantine``)."""

    source: str = Field(description="the file as found")
    problem: str = Field(description="machine-readable: truncated, corrupt, not_fits, xisf, missing_keys, ...")
    reason: str = Field(description="what is wrong, for people")
    quarantined_as: str | None = Field(
        default=None, description="the copy in the quarantine folder, relative to it; empty when none could be made"
    )


class ImagingState(Message):
    """The imaging service's retained state (``<p>/imaging/state``)."""

    night: str = Field(description="the current observing night, YYYY-MM-DD of the evening")
    frames_tonight: int = Field(default=0, ge=0, description="frames registered for this night")
    lights_tonight: int = Field(default=0, ge=0)
    accepted_tonight: int = Field(default=0, ge=0, description="lights tonight that passed grading")
    quarantined_tonight: int = Field(default=0, ge=0, description="files set aside since the night began")
    frames_total: int = Field(default=0, ge=0, description="frames in the repository")
    queue: int = Field(default=0, ge=0, description="files seen but not yet taken (still written, waiting)")
    watching: list[str] = Field(default_factory=list, description="capture folders watched")
    last_frame: str | None = Field(default=None, description="repository path of the newest frame")
    storage_error: str | None = Field(default=None, description="why frames cannot be stored now (a full disk)")
    # Calibration (docs/imaging-calibration.md, "In the service"):
    calibrated_tonight: int = Field(default=0, ge=0, description="lights of this night calibrated")
    calibration_queue: int = Field(
        default=0, ge=0, description="lights not calibrated yet: waiting for their masters or not yet tried"
    )
    waiting_for: list[str] = Field(
        default_factory=list, max_length=20, description="what the waiting lights wait for, one line per reason"
    )
    masters_total: int = Field(default=0, ge=0, description="masters in the calibration library (in use)")


class ImagingMaster(Message):
    """A master built into the calibration library (``<p>/imaging/masters``, not retained)."""

    master_id: str = Field(description="the master's id (kind-hash of its inputs)")
    kind: str = Field(description="bias, dark, flat, darkflat")
    path: str = Field(description="the master FITS in the repository, relative to its root")
    camera: str | None = None
    binning: str | None = None
    gain: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    temperature_c: float | None = None
    exposure_s: float = Field(ge=0)
    filter: str | None = None
    frames: int = Field(ge=1, description="raw frames combined")
    frame_ids: list[int] = Field(default_factory=list, description="the raw frames' ids in the imaging database")
    method: str = Field(description="median, mean, sigma_clip, winsorized_sigma_clip")
    replaces: str | None = Field(default=None, description="the master of fewer frames of the same group it replaces")
    bad_pixel_map: str | None = Field(default=None, description="a dark's bad-pixel map, relative to the root")
    hot_pixels: int | None = None
    cold_pixels: int | None = None
    notes: list[str] = Field(default_factory=list)


class ImagingCalibrated(Message):
    """A light calibrated (``<p>/imaging/calibrated``, not retained): which masters, and why."""

    frame_id: int = Field(description="the raw light's id in the imaging database")
    light: str = Field(description="the raw light in the repository, relative to its root (untouched)")
    path: str = Field(description="the calibrated float32 FITS, relative to the repository's root")
    night: str
    target: str | None = None
    filter: str | None = None
    bias: str | None = Field(default=None, description="master id of the bias applied (none: the dark holds it)")
    dark: str | None = Field(default=None, description="master id of the dark applied")
    flat: str | None = Field(default=None, description="master id of the flat applied")
    dark_scale: float | None = Field(default=None, description="the factor the dark was scaled by (1: same exposure)")
    explanation: list[str] = Field(default_factory=list, description="why each master, one line per kind")
    nan_pixels: int = Field(default=0, ge=0, description="pixels without a value after the calibration")
    bad_pixels_repaired: int | None = Field(default=None, ge=0)
    waited_s: float | None = Field(default=None, ge=0, description="how long the light waited for its masters")
    recalibrated: bool = Field(
        default=False,
        description="calibrated again (a master was built or pinned that is now chosen): the file at path was "
        "replaced; a live stack that folded the earlier file does not fold it again",
    )
    replaces: dict[str, str] | None = Field(
        default=None, description="recalibrated: the masters (kind → master id) of the calibration it replaces"
    )


class ImagingLiveStack(Message):
    """A live stack after a frame was folded in (retained on ``<p>/imaging/livestack/state``: the
    stack updated last; its stretched preview is the JPEG on ``<p>/imaging/livestack/image``)."""

    stack_id: int = Field(description="the stack's id in the imaging database")
    night: str
    target: str | None = None
    filter: str | None = None
    frames: int = Field(ge=0, description="lights folded into the stack")
    integration_s: float = Field(ge=0, description="their exposure times added up")
    left_out: int = Field(default=0, ge=0, description="lights of this stack that could not be registered")
    reference: str = Field(description="the raw light whose grid the stack is on, relative to the repository root")
    path: str = Field(description="the stack (float32 FITS), relative to the repository root")
    preview: str = Field(description="the stretched preview (JPEG), relative to the repository root")
    frame_id: int = Field(description="the raw light folded in last")
    weight: float = Field(ge=0, description="its weight (the reference frame weighs 1)")
    shift_px: tuple[float, float] = Field(description="its registration: shift (x, y) onto the reference, pixels")
    rotation_deg: float = Field(description="its registration: rotation onto the reference, degrees")
    fold_s: float = Field(ge=0, description="seconds from reading the calibrated light to the preview")
    rebuilt: int = Field(
        default=0,
        ge=0,
        description="lights folded again from their calibrated files because some were calibrated again (then "
        "frame_id is the last of those); 0 for an ordinary fold",
    )


class ImagingNightStack(Message):
    """A night's live stack stacked again with rejection once the night was over (an event on
    ``<p>/imaging/nightstacks``): the stack of record of that night, target and filter."""

    stack_id: int = Field(description="the night stack's id in the imaging database")
    live_stack_id: int = Field(description="the live stack it was made from (its lights and registrations)")
    night: str
    target: str | None = None
    filter: str | None = None
    frames: int = Field(ge=0, description="lights stacked")
    integration_s: float = Field(ge=0, description="their exposure times added up")
    rejection: str = Field(description="the per-pixel rejection and its limits, e.g. 'winsorized 3/3'")
    rejected_fraction: float = Field(ge=0, le=1, description="share of all pixel values rejected")
    path: str = Field(description="the stack (float32 FITS; REJECTED and COVERAGE maps), relative to the repository")
    missing: int = Field(default=0, ge=0, description="lights of the live stack whose file could not be read")
    seconds: float = Field(ge=0, description="how long the stack took")


class ImagingProjectStack(Message):
    """A target's project stack built (an event on ``<p>/imaging/projectstacks``): one filter's
    accepted, calibrated lights of every night, registered onto one reference and stacked."""

    stack_id: int = Field(description="the project stack's id in the imaging database")
    target: str
    filter: str | None = None
    nights: list[str] = Field(default_factory=list, description="the observing nights its lights come from")
    frames: int = Field(ge=0, description="lights stacked")
    left_out: int = Field(default=0, ge=0, description="lights that could not be read or registered")
    integration_s: float = Field(ge=0, description="their exposure times added up")
    rejection: str = Field(description="the per-pixel rejection and its limits, e.g. 'winsorized 3/3'")
    rejected_fraction: float = Field(ge=0, le=1, description="share of all pixel values rejected")
    path: str = Field(description="the stack (float32 FITS; REJECTED and COVERAGE maps), relative to the repository")
    sample: str = Field(description="the full-size stretched sample (JPEG), relative to the repository")
    thumbnail: str = Field(description="the stretched thumbnail (JPEG), relative to the repository")
    seconds: float = Field(ge=0, description="how long it took")


class ImagingProjectStackCommand(Message):
    """Stack a target's project now (``<p>/imaging/projectstack/set``): every filter of the target, or
    only ``filter``. Progress and the answer are on ``<p>/imaging/projectstack/state``."""

    target: str = Field(min_length=1, max_length=200)
    filter: str | None = Field(default=None, max_length=100, description="empty: every filter of the target")
    request_id: str | None = Field(default=None, max_length=64)
    origin: CommandOrigin | None = Field(default=None, description="who sent it; empty: unknown")


class ImagingProjectStackState(Message):
    """The project stack in progress or done last (retained on ``<p>/imaging/projectstack/state``):
    its phase and ``done`` of ``total`` (lights registered, then rows stacked)."""

    status: Literal["idle", "registering", "stacking", "done", "failed"] = "idle"
    target: str | None = None
    filter: str | None = None
    done: int = Field(default=0, ge=0, description="lights registered, or rows stacked, so far")
    total: int = Field(default=0, ge=0, description="lights to register, or rows to stack")
    stack_id: int | None = Field(default=None, description="done: the project stack's id")
    path: str | None = Field(default=None, description="done: the stack, relative to the repository")
    reason: str | None = Field(default=None, max_length=1000, description="failed: why")
    request_id: str | None = None
    origin: CommandOrigin | None = None


class PhotometryComparison(BaseModel):
    """A comparison star used for a frame's magnitude: its label, catalogue and instrumental magnitude."""

    model_config = ConfigDict(extra="ignore")

    label: str
    catalogue_mag: float | None = None
    instrumental_mag: float


class ImagingPhotometry(Message):
    """A light of a variable-star target after differential photometry (``<p>/imaging/photometry``):
    its magnitude and error, or (``magnitude`` None) the reasons it has none."""

    frame_id: int = Field(description="the raw light in the imaging database")
    path: str = Field(description="the calibrated light measured, relative to the repository root")
    night: str
    target: str = Field(description="the target's AAVSO name (the report's NAME)")
    filter: str | None = Field(default=None, description="the frame's filter (FILTER header)")
    band: str | None = Field(default=None, description="the AAVSO filter code it is reported in")
    jd: float | None = Field(default=None, description="mid-exposure, JD (UTC)")
    hjd: float | None = Field(default=None, description="mid-exposure, heliocentric JD (UTC)")
    bjd_tdb: float | None = Field(default=None, description="mid-exposure, BJD_TDB")
    magnitude: float | None = None
    error: float | None = Field(default=None, description="1σ, magnitudes")
    check: str | None = Field(default=None, description="the check star's label")
    check_magnitude: float | None = None
    check_residual: float | None = Field(default=None, description="check star measured minus catalogue")
    airmass: float | None = Field(default=None, description="towards the target")
    transformed: bool = Field(default=False, description="on the standard system through a colour term (TRANS=YES)")
    comparisons: list[PhotometryComparison] = Field(default_factory=list)
    chart: str | None = Field(default=None, description="the AAVSO chart ID; None: the observer's own stars")
    wcs: str | None = Field(default=None, description="where the WCS came from: header, astrometry.net")
    fwhm_px: float | None = None
    reasons: list[str] = Field(default_factory=list, description="why there is no magnitude, comparisons dropped")
    report: str | None = Field(
        default=None, description="the night's AAVSO report for the target, relative to the root"
    )


class ImagingTransit(Message):
    """One planet's transit night after the reduction and fit (``<p>/imaging/transits``): the fitted
    mid-time and shape (``status`` ``fitted``), or (``failed``) the reason there is none."""

    fit_id: int = Field(description="the fit in the imaging database")
    night: str
    planet: str = Field(description="the planet's pl_name in the ephemeris file")
    target: str | None = Field(default=None, description="the frames' OBJECT")
    status: Literal["fitted", "failed", "waiting"]
    reason: str | None = Field(default=None, description="why there is no fit (failed), what it waits for")
    filter: str | None = Field(default=None, description="the AAVSO filter code of the report")
    epoch: int | None = Field(default=None, description="the transit's number in the ephemeris")
    tc: float | None = Field(default=None, description="mid-transit, BJD_TDB")
    tc_err: float | None = Field(default=None, description="1σ, days")
    predicted_tc: float | None = Field(default=None, description="the ephemeris' mid-transit, BJD_TDB")
    o_minus_c_min: float | None = Field(default=None, description="observed minus calculated mid-time, minutes")
    o_minus_c_err_min: float | None = Field(default=None, description="1σ, minutes (with the ephemeris')")
    rp_rs: float | None = None
    rp_rs_err: float | None = None
    a_rs: float | None = None
    a_rs_err: float | None = None
    inc: float | None = Field(default=None, description="degrees")
    inc_err: float | None = None
    depth: float | None = Field(default=None, description="(Rp/R*)², a fraction")
    depth_err: float | None = None
    duration_h: float | None = Field(default=None, description="T14, hours")
    duration_err_h: float | None = None
    partial: bool | None = Field(default=None, description="one contact only: a/R* and inc from the priors")
    contact: str | None = Field(default=None, description="the contact a partial transit shows: ingress, egress")
    points_used: int = 0
    points_rejected: int = 0
    ensemble_size: int | None = Field(default=None, description="comparison stars in the ensemble")
    chi2_reduced: float | None = None
    red_noise_beta: float | None = None
    report: str | None = Field(default=None, description="the #TYPE=EXOPLANET report, relative to the repository")
    plot: str | None = Field(default=None, description="the light-curve plot (PNG), relative to the repository")
    points: str | None = Field(default=None, description="the light-curve points (CSV), relative to the repository")


class ImagingMastersCommand(Message):
    """Build, pin or unpin masters (``<p>/imaging/masters/set``); the answer is on ``<p>/imaging/masters/state``.

    ``build`` (the default), without ``frame_ids``: every group of raw calibration frames with at
    least ``min_frames`` frames (empty: ``imaging.calibration.min_frames``) that has no master of
    exactly its frames. With ``frame_ids``: one master of exactly those frames (they must belong
    together). ``pin`` / ``unpin`` with ``master_id``: the master is chosen over newer ones of its
    group until unpinned (docs/imaging-calibration.md, "Pinned masters").
    """

    action: Literal["build", "pin", "unpin"] = "build"
    master_id: str | None = Field(default=None, max_length=64, description="pin, unpin: the master's id")
    min_frames: int | None = Field(default=None, ge=1, le=1000)
    frame_ids: list[int] = Field(default_factory=list, max_length=1000)
    request_id: str | None = Field(default=None, max_length=64)
    origin: CommandOrigin | None = Field(default=None, description="who sent it; empty: unknown")


class ImagingMastersState(Message):
    """The result of the last masters command (retained on ``<p>/imaging/masters/state``)."""

    status: Literal["idle", "running", "done", "failed"] = "idle"
    request_id: str | None = None
    built: list[str] = Field(default_factory=list, description="master ids built by the command")
    errors: list[str] = Field(default_factory=list, description="what could not be built, and why")
    origin: CommandOrigin | None = None
    action: Literal["build", "pin", "unpin"] = "build"
    pinned: list[str] = Field(default_factory=list, description="every master pinned now, after the command")


class ImagingIngestCommand(Message):
    """Take a frame now (``<p>/imaging/ingest/set``), e.g. from ``obsy-imaging post-capture``; answered on
    ``<p>/imaging/ingest/state``.

    With ``path``: that file, as the folder watch would take it (deduplicated with it by path and by
    content hash). Without: the capture folders are scanned again (KStars 3.6 names no file).
    """

    path: str | None = Field(default=None, max_length=4096, description="the frame's absolute path")
    route: Literal["post_capture", "dbus"] = "post_capture"
    request_id: str | None = Field(default=None, max_length=64)
    origin: CommandOrigin | None = Field(default=None, description="who sent it; empty: unknown")


class ImagingIngestState(Message):
    """The answer to an :class:`ImagingIngestCommand` (``<p>/imaging/ingest/state``, not retained)."""

    request_id: str | None = None
    path: str | None = None
    outcome: str = Field(
        description="registered, duplicate, known (taken before), quarantined, already_quarantined, storage_full, "
        "vanished, rejected (a bad command), scanning (no path: the folders are scanned)"
    )
    frame_id: int | None = None
    sha256: str | None = None
    reason: str | None = Field(default=None, description="why it was quarantined or rejected")


# --- scheduler -----------------------------------------------------------------


class ExposurePlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filter: str | None = None
    exposure_s: float = Field(gt=0)
    count: int = Field(ge=1)
    acquired: int = Field(default=0, ge=0)
    binning: int = Field(default=1, ge=1, le=8)
    gain: int | None = None
    offset: int | None = None
    frame_type: FrameType = FrameType.LIGHT


class TargetConstraints(BaseModel):
    """What a target's ``constraints`` dict may hold; every key is optional.

    A key that is left out takes the observatory's default (the scheduler's config
    section); an unknown key or a bad value excludes the target with a reason naming it.
    Altitudes are geometric degrees (no refraction), azimuths from north through east.
    """

    model_config = ConfigDict(extra="forbid")

    min_altitude: float | None = Field(default=None, ge=-5, le=89)
    horizon: list[tuple[float, float]] | None = Field(
        default=None, description="custom horizon: (azimuth, altitude) points, interpolated linearly around the sky"
    )
    max_airmass: float | None = Field(default=None, ge=1)
    moon_separation: float | None = Field(default=None, ge=0, le=180, description="fixed minimum distance, degrees")
    moon_avoidance_distance: float | None = Field(
        default=None, ge=0, le=180, description="Lorentzian avoidance: required distance at full Moon, degrees"
    )
    moon_avoidance_width: float | None = Field(
        default=None, gt=0, le=15, description="Lorentzian avoidance: days from full Moon where it is halved"
    )
    moon_avoidance_when_down: bool | None = Field(
        default=None, description="apply the separation also while the Moon is below the horizon"
    )
    max_moon_altitude: float | None = Field(default=None, ge=-90, le=90)
    moon_down: bool | None = Field(default=None, description="only while the Moon is below the horizon")
    twilight: Literal["astronomical", "nautical", "civil"] | None = None
    meridian_window_min: float | None = Field(
        default=None, gt=0, le=720, description="only this many minutes either side of the meridian transit"
    )
    min_time_on_target_min: float | None = Field(default=None, ge=0, le=720)


class TimeSeries(BaseModel):
    """A time series (a variable star): a visit every ``cadence_min`` within a window, rather than a
    number of frames. A visit takes ``frames_per_visit`` frames of each Light exposure plan, in
    order (the plans' counts are not used). A cadence shorter than a visit and the lead time
    around it keeps the telescope on the target: the frames then follow one another."""

    model_config = ConfigDict(extra="forbid")

    cadence_min: float = Field(gt=0, le=1440, description="minutes from one visit's start to the next's")
    window_start: datetime | None = Field(default=None, description="UTC; empty = whenever the target is usable")
    window_end: datetime | None = Field(default=None, description="UTC; empty = as long as the target is usable")
    frames_per_visit: int = Field(default=1, ge=1, le=1000, description="frames of each Light plan per visit")

    @field_validator("window_start", "window_end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the window's times with a time zone (UTC: ...Z)")
        return value

    @model_validator(mode="after")
    def _window_in_order(self) -> TimeSeries:
        if self.window_start is not None and self.window_end is not None and self.window_end <= self.window_start:
            raise ValueError("the window ends before it starts")
        return self


class Target(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    ra_deg: float = Field(ge=0, lt=360, description="J2000 right ascension in degrees")
    dec_deg: float = Field(ge=-90, le=90, description="J2000 declination in degrees")
    priority: int = Field(default=5, ge=0, le=10)
    enabled: bool = True
    exposure_plans: list[ExposurePlan] = Field(default_factory=list)
    constraints: dict[str, Any] = Field(default_factory=dict, description="keys of TargetConstraints")
    time_series: TimeSeries | None = Field(
        default=None, description="a variable star's time series: a cadence and a window, not a number of frames"
    )


class TargetList(Message):
    """``<prefix>/web/targets``: every target, retained, for the scheduler."""

    targets: list[Target] = Field(default_factory=list)


class NightSummary(Message):
    """``<prefix>/web/night_summary``, retained: the last night that ended, summed up by the web service
    (the end-of-night notification's figures; Home Assistant's "Last night" sensor)."""

    night: str = Field(description="observing night, YYYY-MM-DD of the evening")
    ended: datetime | None = Field(default=None, description="when the MCP said the night ended")
    ended_because: str | None = None
    roof_open_s: float = Field(ge=0, description="seconds the roof was open")
    closed_for: list[str] = Field(default_factory=list, description="each closing's cause: rain, clouds, dawn...")
    lights_taken: int = Field(ge=0)
    lights_accepted: int = Field(ge=0)
    lights_rejected: int = Field(ge=0)
    integration_s: float = Field(ge=0, description="exposure of the lights not rejected, added up")
    stacks: int = Field(ge=0, description="live stacks of the night")
    photometry_reports: int = Field(ge=0, description="AAVSO reports written")
    meteors: int = Field(ge=0)
    satellites: int = Field(ge=0)
    link: str | None = Field(default=None, description="the night on the dashboard")
    details: dict[str, Any] = Field(default_factory=dict, description="the whole summary (GET /api/v1/nights/...)")


class PlannedBlock(BaseModel):
    model_config = ConfigDict(extra="ignore")

    target_id: str
    target_name: str
    start: datetime
    end: datetime
    exposures: int = Field(default=0, ge=0)
    expected_altitude: float | None = None
    min_altitude: float | None = Field(default=None, description="lowest altitude during the block")
    score: float | None = Field(default=None, description="the planner's score when it chose the block")
    sequence_path: str | None = Field(default=None, description="the Ekos sequence (.esq) the block runs")
    transit: str | None = Field(default=None, description="the planet whose transit the block observes, if any")
    transit_partial: bool = Field(default=False, description="the block observes only part of the transit window")
    time_series: bool = Field(default=False, description="the block is a visit of a time-series target")


class PlanSite(BaseModel):
    """Where a plan was made for: lets another site's web service (a fleet's centre) draw its altitudes."""

    model_config = ConfigDict(extra="ignore")

    latitude: float = Field(ge=-90, le=90, description="degrees, north positive")
    longitude: float = Field(ge=-180, le=180, description="degrees, east positive")
    elevation: float = Field(default=0.0, ge=-500, le=9000, description="metres above sea level")
    timezone: str | None = Field(default=None, max_length=64, description="its IANA time zone (its nights' noons)")


class SchedulerPlan(Message):
    """``<prefix>/scheduler/plan``: tonight's timeline and the Ekos files for the MCP."""

    night: str
    site: PlanSite | None = Field(default=None, description="the site the plan is for (None from older schedulers)")
    dark_start: datetime | None = None
    dark_end: datetime | None = None
    blocks: list[PlannedBlock] = Field(default_factory=list)
    excluded: dict[str, str] = Field(default_factory=dict, description="target id -> why it was excluded")
    ekos_schedule_path: str | None = None
    sequence_paths: list[str] = Field(default_factory=list)
    dark_hours: float | None = Field(default=None, ge=0, description="hours the Sun is below the darkest level used")
    filled_fraction: float | None = Field(default=None, ge=0, le=1, description="planned time / dark time")
    moon_illumination: float | None = Field(default=None, ge=0, le=1)
    trigger: str = Field(default="", description="why this plan was made: targets, daily, start, request")
    request_id: str | None = Field(
        default=None, max_length=64, description="the PlanRequest this plan answers; None for the others"
    )


class PlanRequest(Message):
    """``<prefix>/scheduler/plan/set``: plan the rest of the night from now and write new Ekos files.

    The scheduler answers with a plan on ``<prefix>/scheduler/plan`` whose ``request_id``
    repeats this one's (see docs/topics.md).
    """

    request_id: str = Field(min_length=1, max_length=64)
    origin: str = Field(default="", max_length=64, description="who asks: mcp, web, cli")
    reason: str = Field(default="", max_length=200, description="why, for the log and the plan's trigger")


# --- mcp -----------------------------------------------------------------------


class RoofAction(StrEnum):
    OPEN = "OPEN"
    CLOSE = "CLOSE"
    STOP = "STOP"


class Mode(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    OFF = "off"


class NightAction(StrEnum):
    START = "START"
    ABORT = "ABORT"


class McpTransition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    at: datetime
    from_state: str
    to_state: str
    reason: str


class McpEntityEvent(Message):
    """What Home Assistant's event entities of the MCP read (``<p>/mcp/roof/event``, ``alarm/event``,
    ``night/event``): ``event_type`` names what happened, the other fields become its attributes."""

    event_type: str
    reason: str = ""
    unsafe_reasons: list[str] = Field(default_factory=list)
    night: str | None = None


class McpState(Message):
    state: str
    reason: str = ""
    mode: Mode = Mode.AUTO
    roof: Literal["open", "closed", "opening", "closing", "stopped", "unknown"] = "unknown"
    mount_parked: bool | None = None
    safe: bool = False
    alarm: bool = False
    unsafe_reasons: list[str] = Field(default_factory=list)
    recent_transitions: list[McpTransition] = Field(default_factory=list)
    alarm_reason: str = Field(default="", description="what failed, while alarm is true")
    sun_altitude: float | None = None
    ekos_scheduler: str | None = Field(default=None, description="Ekos scheduler status; None = not used/unknown")
    night_aborted: bool = Field(default=False, description="the operator ended tonight's observing")
