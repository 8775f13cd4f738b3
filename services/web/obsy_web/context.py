"""Everything the HTTP layer needs, built once by the service (or by a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from obsy.config import ObsyConfig, imaging_repository_dir
from obsy.topics import Topics
from obsy_web.auth.ratelimit import LoginLimiter
from obsy_web.commands import CommandGateway
from obsy_web.fleet import Fleet
from obsy_web.ingest.ingestor import Ingestor
from obsy_web.live import LatestStates, LiveHub
from obsy_web.previews import PreviewCache
from obsy_web.sky import SkyNow
from obsy_web.status import StatusBoard
from obsy_web.targets import TargetStore
from obsy_web.uploads import UploadStore


@dataclass
class WebContext:
    config: ObsyConfig
    topics: Topics
    engine: Engine
    sessions: sessionmaker[Session]
    board: StatusBoard
    latest: LatestStates
    hub: LiveHub
    targets: TargetStore
    commands: CommandGateway
    sky: SkyNow
    ingestor: Ingestor | None = None
    limiter: LoginLimiter = field(default_factory=lambda: LoginLimiter(5))
    #: Simulate commands to the weather service (``weather/simulate``).
    simulation: CommandGateway | None = None
    #: The sites stored here (this one alone unless ``web.sites`` names bridged ones).
    fleet: Fleet | None = None
    #: The bridged sites' MCPs, by site id: only closing commands are sent (``/fleet/{site}/commands``).
    site_commands: dict[str, CommandGateway] = field(default_factory=dict)
    #: Masters commands to the imaging service (``imaging/masters``).
    masters: CommandGateway | None = None
    #: The bridged sites' files received by HTTP (``api/uploads.py``); made on first use.
    uploads: UploadStore | None = None
    #: Light previews drawn from the imaging repository's FITS (``<data_dir>/web/previews``); made on first use.
    previews: PreviewCache | None = None

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir.resolve()

    @property
    def imaging_repository(self) -> Path:
        """The imaging service's repository (shared with it on the data volume): previews, reports."""
        repository = self.config.setting_of("imaging", "repository", None, kind=Path | None)
        return imaging_repository_dir(repository, self.config.data_dir)
