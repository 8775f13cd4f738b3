"""A simulated INDI camera: INDI's standard CCD properties, exposures on a worker thread, FITS BLOBs.

:class:`CameraDevice` is what the allsky and the main camera share; each subclass says how a
frame is rendered (:meth:`CameraDevice.render`) and adds its own simulation properties.

Properties: CONNECTION, DRIVER_INFO, SIM_CONFIG, SIM_CLOCK (OFFSET_S) and SIM_SITE (LAT, LONG,
ELEV) always; once connected CCD_INFO, CCD_EXPOSURE, CCD_ABORT_EXPOSURE, CCD_FRAME_TYPE,
CCD_GAIN, CCD_FRAME, CCD_BINNING, CCD_TEMPERATURE, CCD_CFA (colour sensors) and the BLOB CCD1.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from obsy_skysim.config import CameraSettings
from obsy_skysim.fitsfile import FrameDescription, fits_bytes
from obsy_skysim.indi_device import Device, chosen_switch, numbers, set_switches, store
from obsy_skysim.indi_xml import Blob, Number, Switch, Text, Vector, Writer, blob_xml
from obsy_skysim.sensor import SensorSpec

log = logging.getLogger("obsy.skysim")

VERSION = "0.1"
MAX_BINNING = 4
CCD_PROPERTIES = (
    "CCD_INFO",
    "CCD_EXPOSURE",
    "CCD_ABORT_EXPOSURE",
    "CCD_FRAME_TYPE",
    "CCD_GAIN",
    "CCD_FRAME",
    "CCD_BINNING",
    "CCD_TEMPERATURE",
    "CCD_CFA",
    "FITS_HEADER",
    "CCD1",
)
#: The FITS header texts a client sets (INDI 1.9's ``INDI::CCD``: Ekos sets the object of a job);
#: "Unknown" is INDI's default, and a keyword left at it is not written.
FITS_HEADER_KEYWORDS = {"FITS_OBSERVER": "OBSERVER", "FITS_OBJECT": "OBJECT"}
UNKNOWN = "Unknown"
FRAME_TYPE_SWITCHES = {"FRAME_LIGHT": "light", "FRAME_BIAS": "bias", "FRAME_DARK": "dark", "FRAME_FLAT": "flat"}


@dataclass(frozen=True)
class Exposure:
    """Everything one exposure needs, fixed when it starts (later changes apply to the next one)."""

    seconds: float
    started: datetime
    monotonic: float
    gain: float
    frame_type: str
    binning: int
    roi: tuple[int, int, int, int]
    scene: Any  # what the subclass needs to render (its renderer, clouds, pointing...)


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # uint16, full sensor
    simulator: dict[str, tuple[Any, str]]  # SIM* FITS keywords: value and comment
    after: dict[str, dict[str, float]] | None = None  # number properties to update once it is sent


class CameraDevice(Device):
    def __init__(
        self,
        settings: CameraSettings,
        spec: SensorSpec,
        writer: Writer,
        *,
        driver_exec: str,
        driver_name: str,
        config_file: str = "",
        config_error: str = "",
    ) -> None:
        super().__init__(settings.device, writer)
        self.settings = settings
        self.spec = spec
        self._exposure: threading.Thread | None = None
        self._abort = threading.Event()
        self._config_error = config_error
        self._build_camera(driver_exec, driver_name, config_file, config_error)

    # --- what a subclass provides ------------------------------------------------------
    def scene(self) -> Any:
        """What :meth:`render` needs, captured when an exposure starts."""
        raise NotImplementedError

    def render(self, exposure: Exposure) -> Rendered:
        raise NotImplementedError

    def world_properties(self) -> tuple[str, ...]:
        """The subclass's properties that exist before connecting."""
        return ()

    def site_changed(self) -> None:
        """Called after SIM_SITE changed ``self.settings.site``."""

    # --- clock and site ------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.settings.clock_offset_s)

    def start(self) -> None:
        """The properties that exist before connecting: the connection and the simulator's world."""
        self.exists("CONNECTION", "DRIVER_INFO", "SIM_CONFIG", "SIM_CLOCK", "SIM_SITE", *self.world_properties())
        if self._config_error:
            self.notes["SIM_CONFIG"] = self._config_error

    def camera_properties(self) -> tuple[str, ...]:
        return tuple(p for p in CCD_PROPERTIES if p != "CCD_CFA" or self.spec.bayer)

    # --- properties ------------------------------------------------------------------------
    def _build_camera(self, driver_exec: str, driver_name: str, config_file: str, config_error: str) -> None:
        s, spec = self.settings, self.spec
        self.vector(
            "CONNECTION",
            "Connection",
            "Main Control",
            "Switch",
            [Switch("CONNECT", "Connect"), Switch("DISCONNECT", "Disconnect", True)],
            rule="OneOfMany",
        )
        self.vector(
            "DRIVER_INFO",
            "Driver Info",
            "General Info",
            "Text",
            [
                Text("DRIVER_NAME", "Name", driver_name),
                Text("DRIVER_EXEC", "Exec", driver_exec),
                Text("DRIVER_VERSION", "Version", VERSION),
                Text("DRIVER_INTERFACE", "Interface", "2"),
            ],
            perm="ro",
        )
        self.vector(
            "SIM_CONFIG",
            "Settings file",
            "Simulation",
            "Text",
            [Text("FILE", "File", config_file or "(defaults)")],
            perm="ro",
            state="Alert" if config_error else "Ok",
        )
        self.vector(
            "CCD_INFO",
            "CCD Information",
            "Image Info",
            "Number",
            [
                Number("CCD_MAX_X", "Max. Width", spec.width, 1, 20000, 0, "%4.0f"),
                Number("CCD_MAX_Y", "Max. Height", spec.height, 1, 20000, 0, "%4.0f"),
                Number("CCD_PIXEL_SIZE", "Pixel size (um)", spec.pixel_um, 0, 100, 0, "%5.2f"),
                Number("CCD_PIXEL_SIZE_X", "Pixel size X", spec.pixel_um, 0, 100, 0, "%5.2f"),
                Number("CCD_PIXEL_SIZE_Y", "Pixel size Y", spec.pixel_um, 0, 100, 0, "%5.2f"),
                Number("CCD_BITSPERPIXEL", "Bits per pixel", 16, 8, 64, 0, "%3.0f"),
            ],
            perm="ro",
            state="Ok",
        )
        self.vector(
            "CCD_EXPOSURE",
            "Expose",
            "Main Control",
            "Number",
            [Number("CCD_EXPOSURE_VALUE", "Duration (s)", 1.0, 0.0, s.max_exposure_s, 0.001, "%5.3f")],
        )
        self.vector(
            "CCD_ABORT_EXPOSURE", "Abort", "Main Control", "Switch", [Switch("ABORT", "Abort")], rule="AtMostOne"
        )
        self.vector(
            "CCD_FRAME_TYPE",
            "Type",
            "Image Settings",
            "Switch",
            [
                Switch("FRAME_LIGHT", "Light", True),
                Switch("FRAME_BIAS", "Bias"),
                Switch("FRAME_DARK", "Dark"),
                Switch("FRAME_FLAT", "Flat"),
            ],
            rule="OneOfMany",
            state="Ok",
        )
        self.vector(
            "CCD_GAIN",
            "Gain",
            "Main Control",
            "Number",
            [Number("GAIN", "Gain", spec.gain_min, spec.gain_min, spec.gain_max, 1, "%.0f")],
            state="Ok",
        )
        self.vector(
            "CCD_FRAME",
            "Frame",
            "Image Settings",
            "Number",
            [
                Number("X", "Left", 0, 0, spec.width - 1, 1, "%4.0f"),
                Number("Y", "Top", 0, 0, spec.height - 1, 1, "%4.0f"),
                Number("WIDTH", "Width", spec.width, 1, spec.width, 1, "%4.0f"),
                Number("HEIGHT", "Height", spec.height, 1, spec.height, 1, "%4.0f"),
            ],
            state="Ok",
        )
        self.vector(
            "CCD_BINNING",
            "Binning",
            "Image Settings",
            "Number",
            [
                Number("HOR_BIN", "X", 1, 1, MAX_BINNING, 1, "%2.0f"),
                Number("VER_BIN", "Y", 1, 1, MAX_BINNING, 1, "%2.0f"),
            ],
            state="Ok",
        )
        self.vector(
            "CCD_TEMPERATURE",
            "Temperature",
            "Main Control",
            "Number",
            [Number("CCD_TEMPERATURE_VALUE", "Temperature (C)", spec.temperature_c, -50, 70, 0, "%5.2f")],
            perm="ro",
            state="Ok",
        )
        self.vector(
            "CCD_CFA",
            "Bayer Info",
            "Image Info",
            "Text",
            [
                Text("CFA_OFFSET_X", "X Offset", "0"),
                Text("CFA_OFFSET_Y", "Y Offset", "0"),
                Text("CFA_TYPE", "Filter", spec.bayer or ""),
            ],
            perm="ro",
            state="Ok",
        )
        self.vector(
            "FITS_HEADER",
            "FITS Header",
            "General Info",
            "Text",
            [Text("FITS_OBSERVER", "Observer", UNKNOWN), Text("FITS_OBJECT", "Object", UNKNOWN)],
        )
        self.vector("CCD1", "Image Data", "Image Info", "BLOB", [Blob("CCD1", "Image")], perm="ro")
        self.vector(
            "SIM_CLOCK",
            "Clock",
            "Simulation",
            "Number",
            [Number("OFFSET_S", "Offset (s)", s.clock_offset_s, -1e10, 1e10, 1, "%.3f")],
            state="Ok",
        )
        self.vector(
            "SIM_SITE",
            "Site",
            "Simulation",
            "Number",
            [
                Number("LAT", "Latitude (deg)", s.site.latitude, -90, 90, 0, "%.6f"),
                Number("LONG", "Longitude (deg, east)", s.site.longitude, -180, 180, 0, "%.6f"),
                Number("ELEV", "Elevation (m)", s.site.elevation, -500, 9000, 0, "%.1f"),
            ],
            state="Ok",
        )
        self.on_new("CONNECTION", self._connection)
        self.on_new("CCD_EXPOSURE", self._expose)
        self.on_new("CCD_ABORT_EXPOSURE", self._abort_exposure)
        self.on_new("CCD_FRAME_TYPE", self.one_of_many)
        self.on_new("CCD_GAIN", self.plain_numbers)
        self.on_new("CCD_FRAME", self._frame)
        self.on_new("CCD_BINNING", self._binning)
        self.on_new("FITS_HEADER", self._fits_header)
        self.on_new("SIM_CLOCK", self._clock)
        self.on_new("SIM_SITE", self._site)

    # --- handlers ----------------------------------------------------------------------
    def _connection(self, v: Vector, values: dict[str, str]) -> None:
        on = chosen_switch(v, values)
        set_switches(v, on)
        v.state = "Ok"
        self.update("CONNECTION")
        if on == "CONNECT":
            self.define(*(p for p in self.camera_properties() if p not in self.defined))
        else:
            self._abort.set()
            self.delete(*self.camera_properties())

    @staticmethod
    def one_of_many(v: Vector, values: dict[str, str]) -> str:
        set_switches(v, chosen_switch(v, values))
        v.state = "Ok"
        return ""

    @staticmethod
    def plain_numbers(v: Vector, values: dict[str, str]) -> str:
        store(v, numbers(v, values))
        v.state = "Ok"
        return ""

    @staticmethod
    def _fits_header(v: Vector, values: dict[str, str]) -> str:
        for name, text in values.items():
            element = v.element(name)
            if len(text) > 68 or any(not (" " <= c <= "~") for c in text):
                raise ValueError(f"{v.name}.{name}: {text[:40]!r} is not printable ASCII of at most 68 characters")
            element.value = text.strip()
        v.state = "Ok"
        return ""

    def header_texts(self) -> dict[str, str]:
        """The FITS keywords a client set through FITS_HEADER (OBJECT, OBSERVER), as INDI writes them."""
        texts = {n: e.value for n, e in self.vectors["FITS_HEADER"].elements.items()}
        return {key: texts[name] for name, key in FITS_HEADER_KEYWORDS.items() if texts.get(name) not in ("", UNKNOWN)}

    def _frame(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        spec = self.spec
        if n["X"] + n["WIDTH"] > spec.width or n["Y"] + n["HEIGHT"] > spec.height:
            raise ValueError(
                f"CCD_FRAME: {n['WIDTH']:g} x {n['HEIGHT']:g} at ({n['X']:g}, {n['Y']:g}) leaves the "
                f"{spec.width} x {spec.height} sensor"
            )
        store(v, {k: float(round(x)) for k, x in n.items()})
        v.state = "Ok"
        return ""

    @staticmethod
    def _binning(v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        if n["HOR_BIN"] != n["VER_BIN"] or n["HOR_BIN"] != round(n["HOR_BIN"]):
            raise ValueError(
                f"CCD_BINNING: only equal whole binning both ways, not {n['HOR_BIN']:g} x {n['VER_BIN']:g}"
            )
        store(v, n)
        v.state = "Ok"
        return ""

    def _clock(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        shift = n["OFFSET_S"] - self.settings.clock_offset_s
        self.settings = self.settings.model_copy(update={"clock_offset_s": n["OFFSET_S"]})
        self.clock_shifted(shift)
        store(v, n)
        v.state = "Ok"
        return ""

    def clock_shifted(self, seconds: float) -> None:
        """Called after SIM_CLOCK moved the simulated time by ``seconds``."""

    def _site(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        site = self.settings.site.model_copy(
            update={"latitude": n["LAT"], "longitude": n["LONG"], "elevation": n["ELEV"]}
        )
        self.settings = self.settings.model_copy(update={"site": site})
        self.site_changed()
        store(v, n)
        v.state = "Ok"
        return ""

    # --- exposures -----------------------------------------------------------------------
    def _expose(self, v: Vector, values: dict[str, str]) -> str:
        seconds = numbers(v, values)["CCD_EXPOSURE_VALUE"]
        if self._exposure is not None and self._exposure.is_alive():
            raise ValueError("CCD_EXPOSURE: an exposure is already running (abort it first)")
        store(v, {"CCD_EXPOSURE_VALUE": seconds})
        v.state = "Busy"
        self._abort.clear()
        frame = self.vectors["CCD_FRAME"].values()
        exposure = Exposure(
            seconds=seconds,
            started=self.now(),
            monotonic=time.monotonic(),
            gain=float(self.vectors["CCD_GAIN"].values()["GAIN"]),
            frame_type=FRAME_TYPE_SWITCHES[self.vectors["CCD_FRAME_TYPE"].on_switch() or "FRAME_LIGHT"],
            binning=int(self.vectors["CCD_BINNING"].values()["HOR_BIN"]),
            roi=tuple(int(frame[k]) for k in ("X", "Y", "WIDTH", "HEIGHT")),  # type: ignore[arg-type]
            scene=self.scene(),
        )
        self._exposure = threading.Thread(target=self._run_exposure, args=(exposure,), name="exposure", daemon=True)
        self._exposure.start()
        return ""

    def _run_exposure(self, e: Exposure) -> None:
        log.info("%s exposure of %g s started (simulated time %s)", e.frame_type, e.seconds, e.started)
        try:
            rendered = self.render(e)
            data = self.fits(rendered, e)
            end = e.monotonic + e.seconds
            while (left := end - time.monotonic()) > 0:
                if self._abort.wait(min(1.0, left)):
                    break
                with self.lock:
                    store(self.vectors["CCD_EXPOSURE"], {"CCD_EXPOSURE_VALUE": max(0.0, end - time.monotonic())})
                    self.update("CCD_EXPOSURE")
            with self.lock:
                if self._abort.is_set():
                    self.update("CCD_EXPOSURE", "Idle", "exposure aborted")
                    return
                blob = self.vectors["CCD1"]
                blob.state = "Ok"
                self.writer.send(blob_xml(blob, "CCD1", data, ".fits"))
                log.info("sent a %d byte FITS image", len(data))
                store(self.vectors["CCD_EXPOSURE"], {"CCD_EXPOSURE_VALUE": 0.0})
                self.update("CCD_EXPOSURE", "Ok")
                for name, values in (rendered.after or {}).items():
                    store(self.vectors[name], values)
                    self.update(name, "Ok")
        except Exception as exc:  # a failed frame must never take the driver down
            log.exception("exposure failed")
            with self.lock:
                self.update("CCD_EXPOSURE", "Alert", f"exposure failed: {exc}")

    def _abort_exposure(self, v: Vector, values: dict[str, str]) -> str:
        self._abort.set()
        set_switches(v, None)
        v.state = "Ok"
        return ""

    def fits(self, rendered: Rendered, e: Exposure) -> bytes:
        return camera_fits(
            rendered.image,
            self.spec,
            self.settings,
            frame_type=e.frame_type,
            exposure_s=e.seconds,
            gain=e.gain,
            started=e.started,
            roi=e.roi,
            binning=e.binning,
            simulator=rendered.simulator,
            instrument=self.name,
            header=self.header_texts(),
        )


def camera_fits(
    image: np.ndarray,
    spec: SensorSpec,
    settings: CameraSettings,
    *,
    frame_type: str,
    exposure_s: float,
    gain: float,
    started: datetime,
    roi: tuple[int, int, int, int] | None = None,
    binning: int = 1,
    simulator: dict[str, tuple[Any, str]] | None = None,
    instrument: str | None = None,
    header: dict[str, str] | None = None,
) -> bytes:
    """The FITS file as the camera sends it: cropped to ``roi`` (x, y, width, height), binned,
    with INDI's keywords and the simulator's truths."""
    x, y = 0, 0
    if roi is not None:
        x, y, w, h = roi
        image = image[y : y + h, x : x + w]
    if binning > 1:
        image = bin_image(image, binning)
    description = FrameDescription(
        instrument=instrument or settings.device,
        frame_type=frame_type,
        exposure_s=exposure_s,
        gain=gain,
        offset_adu=spec.offset_adu,
        temperature_c=spec.temperature_c,
        pixel_um=spec.pixel_um,
        binning=binning,
        started=started,
        bayer=spec.bayer if (x % 2, y % 2) == (0, 0) else None,
        latitude=settings.site.latitude,
        longitude=settings.site.longitude,
        simulator=simulator or {},
        texts=header or {},
    )
    return fits_bytes(np.ascontiguousarray(image), description)


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor`` x ``factor`` block (the edge that does not fill a block is dropped)."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor).astype(np.float32)
    return np.clip(blocks.mean(axis=(1, 3)) + 0.5, 0, 65535).astype(np.uint16)
