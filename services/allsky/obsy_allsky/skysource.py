"""Where the names on the sky and the streaks' alt/az get the camera's sky model from.

clouddetect fits the :class:`obsy.skymodel.SkyModel` of the allsky camera on the stored frames
(the very pictures this service writes, so its pixels are theirs) and keeps the latest fit in
``<data_dir>/clouddetect/sky_model.json``, replaced atomically whenever it refits. The allsky
service reads that file (both services share the data volume, as they already do for the
frames): no topic, no message type and no new dependency between the two services, and a
restarted allsky service finds the model at once. The file is read again only when it changes.

When there is no fitted model (clouddetect is not running, has not seen a clear night yet, or
the file cannot be read), the fixed model from the configuration serves: the overlay's
``sky.sky_model``, else clouddetect's own fixed ``transmission.sky_model``. With neither, what
needs the model (its ``purpose``: the names on the sky, the streaks' alt/az) goes without it,
said in one log line, and once more whenever the source changes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from obsy.config import ObsyConfig, SkyModelConfig
from obsy.skymodel import SkyModel

#: The file clouddetect keeps its fitted model in, under ``data_dir`` (see obsy_clouddetect.judge).
FITTED_MODEL_FILE = Path("clouddetect") / "sky_model.json"


def names_wanted(config: ObsyConfig) -> bool:
    """Whether any overlay stage of the pipeline draws names on the sky."""
    return any(stage.stage == "overlay" and stage.sky.enabled for stage in config.allsky.pipeline.finish)


def configured_model(config: ObsyConfig) -> tuple[SkyModel | None, str]:
    """The fixed model from the configuration and where it was set; (None, '') when there is none."""
    for stage in config.allsky.pipeline.finish:
        if stage.stage == "overlay" and stage.sky.sky_model is not None:
            return _model(stage.sky.sky_model), "the overlay's sky.sky_model"
    # Read here too where obsy-clouddetect is not installed (the allsky image): the core's SkyModelConfig checks it.
    fixed = config.setting_of("clouddetect", "transmission.sky_model", None, kind=SkyModelConfig | None)
    if fixed is not None:
        return _model(fixed), "clouddetect.transmission.sky_model"
    return None, ""


def _model(section: SkyModelConfig) -> SkyModel:
    return SkyModel(**section.model_dump())


class SkyModelSource:
    """The sky model for the next frame: clouddetect's fitted one, else the configured one, else None."""

    def __init__(self, config: ObsyConfig, log: logging.Logger, purpose: str = "names on the sky") -> None:
        self.purpose = purpose  # what the model serves, for the log lines
        self.path = config.data_dir / FITTED_MODEL_FILE
        self.fixed, self.fixed_from = configured_model(config)
        self.log = log
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self._fitted: SkyModel | None = None
        self._said: str | None = None  # the source last logged

    @property
    def source(self) -> str | None:
        """Where the last model came from ("none" when there was none); None before the first frame."""
        return self._said

    def current(self) -> SkyModel | None:
        model, source = self._read(), "clouddetect's fitted model"
        if model is None:
            model, source = self.fixed, self.fixed_from
        if model is None:
            source = "none"
        if source != self._said:
            if model is None:
                self.log.warning(
                    "no sky model for %s (clouddetect has not fitted one in %s, and no fixed sky_model is configured)",
                    self.purpose,
                    self.path,
                    extra={"event": "sky_model_missing"},
                )
            else:
                self.log.info("sky model for %s: %s", self.purpose, source, extra={"event": "sky_model"})
            self._said = source
        return model

    def _read(self) -> SkyModel | None:
        try:
            stat = self.path.stat()
        except OSError:
            self._stamp, self._fitted = None, None
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._fitted = SkyModel.from_dict(json.loads(self.path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                self.log.warning("ignoring the sky model in %s: %s", self.path, exc, extra={"event": "sky_model_bad"})
                self._fitted = None
        return self._fitted
