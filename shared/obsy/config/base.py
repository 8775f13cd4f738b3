"""What every config section is built on: the error type, the section base classes, the names and constants.

Imports nothing of OBSY's but ``obsy.messages``-free standard pieces, so a service's own schema module
(``obsy_<service>/config.py``) can import it while ``obsy.config`` is still being set up.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

if TYPE_CHECKING:
    from obsy.config.model import CoreConfig

ENV_PREFIX = "OBSY_"
CONFIG_PATH_ENV = "OBSY_CONFIG"
#: OBSY_ variables that are not configuration keys: the config file's path, and what the
#: sky simulator, the scripts and the tests read. Any other OBSY_ variable must name a key
#: (a misspelt one is an error, never silently ignored).
NOT_CONFIG_ENV = frozenset(
    {
        CONFIG_PATH_ENV,
        "OBSY_SKYSIM_CONFIG",  # the sky simulator's settings file (its drivers read it)
        "OBSY_VENV",  # scripts/bootstrap.sh: where the virtual environment goes
        "OBSY_SECRETS_DIR",  # scripts: where deploy secrets are written
        "OBSY_TEST_WORKERS",  # scripts/test.sh: parallel test workers
        "OBSY_TEST_POSTGRES",  # the tests: the Postgres server they use
        "OBSY_EXOTIC_PYTHON",  # the tests: EXOTIC's interpreter (scripts/exotic-env.sh)
        "OBSY_HOMEASSISTANT_PYTHON",  # the tests: Home Assistant's interpreter (scripts/homeassistant-env.sh)
        "OBSY_FUZZ_EXAMPLES",  # the tests: how many requests the web API fuzzing sends
        "OBSY_TEST_CPU_REPORT",  # the tests: a file for each test's CPU (tests/support/cpu_report.py)
    }
)
#: Every OBSY service, in the order obsy-local starts them: the catalogue every process knows, installed here or not
#: (why it is written down and not read from the ``obsy.services`` entry points: ``obsy.services``' docstring).
SERVICE_NAMES = ("weather", "clouddetect", "allsky", "scheduler", "mcp", "web", "imaging", "alpaca")

DEFAULT_SIMULATOR_DRIVERS = (
    "indi_simulator_telescope",
    "indi_simulator_ccd",
    "indi_rolloff_dome",
    "indi_simulator_weather",
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ConfigError(Exception):
    """The configuration cannot be used; ``str(error)`` is meant for the operator."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def report(self, program: str) -> str:
        """The text a command prints: a heading naming the program, then one problem per line."""
        return f"{program}: configuration error:\n" + "\n".join(f"  {problem}" for problem in self.problems)


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


#: A site id: what the web service stores with every row of that site (``site`` columns).
SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


def site_slug(prefix: str) -> str:
    """A site id made from a topic prefix: ``obsy`` stays ``obsy``, ``sites/North`` becomes ``sites-north``."""
    return re.sub(r"[^a-z0-9_\-]", "-", prefix.lower())[:64] or "obsy"


class ServiceSection(Section):
    """Settings every service has; each service's own section extends this."""

    enabled: bool = True
    log_level: LogLevel = "INFO"
    heartbeat_interval: float = Field(default=15.0, gt=0, description="seconds between health messages")

    def check_config(self, config: CoreConfig) -> None:
        """Check this section against the rest of the configuration, once all of it is validated.

        A service whose settings must agree with another section (the core's, or another service's
        through ``config.setting_of``) overrides this and raises ``ValueError`` naming the keys; the
        loader reports it like any other mistake. Runs only where the service is installed.
        """
