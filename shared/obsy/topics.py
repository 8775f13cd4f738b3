"""The whole OBSY topic tree, in one place.

Every topic is ``<prefix>/<service>/...``; the prefix is configurable (``broker.prefix``)
so that two observatories can share one broker. docs/topics.md lists the tree.

Conventions (the bus contract):

- ``<prefix>/<service>/availability``: ``online`` / ``offline`` (Last Will) / ``stopped``; retained.
- ``<prefix>/<service>/health``: retained heartbeat with counters; its age tells a hung service.
- ``<prefix>/<service>/state`` and sub-states: retained JSON.
- ``<prefix>/<service>/<thing>/set``: commands; the result is echoed on the matching state topic.
- ``<prefix>/<service>/events``: JSON events, not retained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obsy.config import SERVICE_NAMES

#: Topic kinds with a payload size limit of their own: commands, events, states (and
#: everything else, Home Assistant's and weather sensors' topics included), the allsky JPEG.
PayloadKind = Literal["command", "event", "state", "image"]

ONLINE = "online"
OFFLINE = "offline"
STOPPED = "stopped"
AVAILABILITY_VALUES = (ONLINE, OFFLINE, STOPPED)


@dataclass(frozen=True)
class Topics:
    """Builds topic names under one prefix. All services use the same instance shape."""

    prefix: str = "obsy"

    def _join(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # --- per-service conventions -------------------------------------------------
    def availability(self, service: str) -> str:
        return self._join(service, "availability")

    def health(self, service: str) -> str:
        return self._join(service, "health")

    def state(self, service: str, sub: str | None = None) -> str:
        return self._join(service, "state") if sub is None else self._join(service, sub, "state")

    def command(self, service: str, thing: str) -> str:
        return self._join(service, thing, "set")

    def events(self, service: str) -> str:
        return self._join(service, "events")

    def everything(self) -> str:
        """Filter matching the whole OBSY tree (the web ingestor subscribes to it)."""
        return self._join("#")

    def all_availability(self) -> str:
        return self._join("+", "availability")

    def all_health(self) -> str:
        return self._join("+", "health")

    # --- weather -----------------------------------------------------------------
    @property
    def weather_state(self) -> str:
        return self.state("weather")

    @property
    def weather_safety(self) -> str:
        return self._join("weather", "safety")

    @property
    def weather_simulate_command(self) -> str:
        """Change an INDI weather simulator's weather (a :class:`~obsy.messages.WeatherSimulationCommand`)."""
        return self.command("weather", "simulate")

    # --- clouddetect -------------------------------------------------------------
    @property
    def clouddetect_state(self) -> str:
        return self.state("clouddetect")

    # --- allsky ------------------------------------------------------------------
    @property
    def allsky_state(self) -> str:
        return self.state("allsky")

    @property
    def allsky_frames(self) -> str:
        """Events, one per processed frame, with metadata and the file URL."""
        return self._join("allsky", "frames")

    @property
    def allsky_streaks(self) -> str:
        """Events, one per meteor or satellite track in a night frame (an :class:`~obsy.messages.AllskyStreak`)."""
        return self._join("allsky", "streaks")

    @property
    def allsky_image(self) -> str:
        """A small retained JPEG (raw bytes) for Home Assistant's image entity."""
        return self._join("allsky", "image")

    @property
    def allsky_progress(self) -> str:
        """Progress of a long job (a night's product), an :class:`~obsy.messages.AllskyProgress`, retained."""
        return self._join("allsky", "progress")

    @property
    def allsky_darks_command(self) -> str:
        """Capture master darks now (an :class:`~obsy.messages.AllskyDarksCommand`)."""
        return self.command("allsky", "darks")

    @property
    def allsky_darks_state(self) -> str:
        """Progress and result of the darks command, retained."""
        return self.state("allsky", "darks")

    # --- scheduler ---------------------------------------------------------------
    @property
    def scheduler_plan(self) -> str:
        return self._join("scheduler", "plan")

    @property
    def scheduler_plan_command(self) -> str:
        """A request to plan the rest of the night from now (the MCP, before it starts Ekos)."""
        return self.command("scheduler", "plan")

    @property
    def web_targets(self) -> str:
        """Targets and exposure plans, owned by the web service, retained for the scheduler."""
        return self._join("web", "targets")

    @property
    def web_night_summary(self) -> str:
        """The last night summed up (:class:`~obsy.messages.NightSummary`), retained: Home Assistant's sensor."""
        return self._join("web", "night_summary")

    # --- mcp ---------------------------------------------------------------------
    @property
    def mcp_state(self) -> str:
        return self.state("mcp")

    @property
    def mcp_roof_command(self) -> str:
        return self.command("mcp", "roof")

    @property
    def mcp_mode_command(self) -> str:
        return self.command("mcp", "mode")

    @property
    def mcp_night_command(self) -> str:
        return self.command("mcp", "night")

    @property
    def mcp_remote_roof_command(self) -> str:
        """The roof command from a central site, through the bridge: only CLOSE and STOP are taken."""
        return self._join("mcp", "remote", "roof", "set")

    @property
    def mcp_remote_night_command(self) -> str:
        """The night command from a central site, through the bridge: only ABORT is taken."""
        return self._join("mcp", "remote", "night", "set")

    @property
    def mcp_roof_event(self) -> str:
        """The roof opened, closing (for what), closed: an :class:`~obsy.messages.McpEntityEvent` (HA event)."""
        return self._join("mcp", "roof", "event")

    @property
    def mcp_alarm_event(self) -> str:
        """An alarm raised or cleared: an :class:`~obsy.messages.McpEntityEvent` (HA event)."""
        return self._join("mcp", "alarm", "event")

    @property
    def mcp_night_event(self) -> str:
        """The night started or ended: an :class:`~obsy.messages.McpEntityEvent` (HA event)."""
        return self._join("mcp", "night", "event")

    def payload_kind(self, topic: str) -> PayloadKind:
        """Which size limit (``broker.max_payload``) applies to a message on ``topic``."""
        if topic in (self.allsky_image, self.imaging_live_stack_image):
            return "image"
        if topic.endswith("/set"):
            return "command"
        if topic.endswith("/events") or topic in (
            self.allsky_frames,
            self.allsky_streaks,
            self.imaging_frames,
            self.imaging_quarantine,
            self.imaging_masters,
            self.imaging_calibrated,
            self.mcp_roof_event,
            self.mcp_alarm_event,
            self.mcp_night_event,
            self.imaging_photometry,
            self.imaging_night_stacks,
            self.imaging_project_stacks,
            self.imaging_transits,
        ):
            return "event"
        return "state"

    # --- imaging -----------------------------------------------------------------
    @property
    def imaging_state(self) -> str:
        """Counts tonight and the queue depth, an :class:`~obsy.messages.ImagingState`, retained."""
        return self.state("imaging")

    @property
    def imaging_frames(self) -> str:
        """Events, one per frame registered in the repository (an :class:`~obsy.messages.ImagingFrame`)."""
        return self._join("imaging", "frames")

    @property
    def imaging_quarantine(self) -> str:
        """Events, one per file set aside with its reason (an :class:`~obsy.messages.ImagingQuarantined`)."""
        return self._join("imaging", "quarantine")

    @property
    def imaging_masters(self) -> str:
        """Events, one per master built into the calibration library (an :class:`~obsy.messages.ImagingMaster`)."""
        return self._join("imaging", "masters")

    @property
    def imaging_acquired(self) -> str:
        """Accepted lights per target, filter and exposure (an :class:`~obsy.messages.ImagingAcquired`, retained)."""
        return self._join("imaging", "acquired")

    @property
    def imaging_calibrated(self) -> str:
        """Events, one per light calibrated, with its masters and why (an :class:`~obsy.messages.ImagingCalibrated`)."""
        return self._join("imaging", "calibrated")

    @property
    def imaging_masters_command(self) -> str:
        """Build masters now (an :class:`~obsy.messages.ImagingMastersCommand`)."""
        return self.command("imaging", "masters")

    @property
    def imaging_masters_state(self) -> str:
        """The answer to the last masters command (an :class:`~obsy.messages.ImagingMastersState`), retained."""
        return self.state("imaging", "masters")

    @property
    def imaging_ingest_command(self) -> str:
        """Take a frame now (post-capture script, D-Bus): :class:`~obsy.messages.ImagingIngestCommand`."""
        return self.command("imaging", "ingest")

    @property
    def imaging_ingest_state(self) -> str:
        """The answer to it: :class:`~obsy.messages.ImagingIngestState` (not retained)."""
        return self.state("imaging", "ingest")

    @property
    def imaging_night_stacks(self) -> str:
        """Events, one per night stack built (an :class:`~obsy.messages.ImagingNightStack`)."""
        return self._join("imaging", "nightstacks")

    @property
    def imaging_project_stacks(self) -> str:
        """Events, one per project stack built (an :class:`~obsy.messages.ImagingProjectStack`)."""
        return self._join("imaging", "projectstacks")

    @property
    def imaging_project_stack_command(self) -> str:
        """Stack a target's project now (an :class:`~obsy.messages.ImagingProjectStackCommand`)."""
        return self.command("imaging", "projectstack")

    @property
    def imaging_project_stack_state(self) -> str:
        """The project stack in progress or done last, with done/total
        (an :class:`~obsy.messages.ImagingProjectStackState`), retained."""
        return self.state("imaging", "projectstack")

    @property
    def imaging_live_stack_state(self) -> str:
        """The live stack updated last (an :class:`~obsy.messages.ImagingLiveStack`), retained."""
        return self.state("imaging", "livestack")

    @property
    def imaging_photometry(self) -> str:
        """Events, one per light measured (or not) by the variable-star photometry (an
        :class:`~obsy.messages.ImagingPhotometry`)."""
        return self._join("imaging", "photometry")

    @property
    def imaging_transits(self) -> str:
        """Events, one per exoplanet transit night fitted (or not) (an :class:`~obsy.messages.ImagingTransit`)."""
        return self._join("imaging", "transits")

    @property
    def imaging_live_stack_image(self) -> str:
        """Its stretched preview: a small retained JPEG (raw bytes), as ``<p>/allsky/image``."""
        return self._join("imaging", "livestack", "image")

    def service_of(self, topic: str) -> str | None:
        """The service a topic belongs to, or None when it is outside this prefix."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        service = topic[len(head) :].split("/", 1)[0]
        return service if service in SERVICE_NAMES else None


HOMEASSISTANT_STATUS = "homeassistant/status"
