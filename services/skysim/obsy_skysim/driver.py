"""INDI drivers of the sky simulator, started by indiserver like any other driver.

``indi_obsy_allsky`` is an allsky camera with INDI's standard CCD properties (what OBSY's allsky
service, KStars/Ekos and any INDI client use) and the simulator's own:

=====================  ====  ==========================================================
property               perm  meaning
=====================  ====  ==========================================================
CONNECTION             rw    CONNECT / DISCONNECT; the camera's properties exist while connected
DRIVER_INFO            ro    name, executable, version, interface (2 = CCD)
CCD_EXPOSURE           rw    CCD_EXPOSURE_VALUE seconds (0 .. max_exposure_s); counts down, then CCD1
CCD_ABORT_EXPOSURE     rw    ABORT
CCD_FRAME_TYPE         rw    FRAME_LIGHT, FRAME_BIAS, FRAME_DARK, FRAME_FLAT
CCD_GAIN               rw    GAIN (0.1 dB steps, 0 .. gain_max)
CCD_FRAME              rw    X, Y, WIDTH, HEIGHT (a region of interest, unbinned pixels)
CCD_BINNING            rw    HOR_BIN, VER_BIN (1 .. 4, the same both ways)
CCD_INFO               ro    CCD_MAX_X, CCD_MAX_Y, CCD_PIXEL_SIZE(_X/_Y), CCD_BITSPERPIXEL
CCD_TEMPERATURE        ro    CCD_TEMPERATURE_VALUE (uncooled: the sensor's temperature)
CCD_CFA                ro    CFA_OFFSET_X, CFA_OFFSET_Y, CFA_TYPE (colour sensors only)
CCD1                   ro    the image: FITS, with the keywords INDI's CCD drivers write
SIM_CLOUDS             rw    CLEAR, SCATTERED, BANK, VEIL, OVERCAST
SIM_CLOUD_SETTINGS     rw    COVER %, WIND_SPEED m/s, WIND_FROM deg, VEIL_TRANSMISSION, BANK_TOP deg, SEED
SIM_CLOUD_TRUTH        ro    COVER: the true cloud cover now (percent of the sky above 20 deg)
SIM_CLOCK              rw    OFFSET_S: seconds added to the system clock (the demo's shifted night)
SIM_SITE               rw    LAT, LONG, ELEV
SIM_CONFIG             ro    FILE: the settings file read; Alert with the reason when it could not be used
=====================  ====  ==========================================================

A wrong value (not a number, out of range, an unknown element) is answered with the property
in Alert and a message naming what is wrong; the previous value stays and the driver goes on.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from obsy_skysim.allsky import AllskyRenderer, RenderedFrame
from obsy_skysim.clouds import CLOUD_KINDS, Clouds
from obsy_skysim.config import (
    CONFIG_ENV,
    AllskyCameraSettings,
    CloudSettings,
    ConfigError,
    SkySimConfig,
    load_config,
)
from obsy_skysim.fitsfile import FrameDescription, fits_bytes
from obsy_skysim.indi_xml import (
    Blob,
    Number,
    Reader,
    Switch,
    Text,
    Vector,
    Writer,
    blob_xml,
    message_xml,
    parse_new_vector,
)

log = logging.getLogger("obsy.skysim")

VERSION = "0.1"
MAX_BINNING = 4


class Device:
    """One INDI device: its property vectors, which of them are defined now, and request dispatch.

    Subclasses register a handler per writable property (:meth:`on_new`). A handler changes the
    vector and returns the message to send with its update ("" for none), or None when it sent
    the updates itself; one that raises ``ValueError`` leaves the property in Alert with the
    error as its message and its values as they were.
    """

    def __init__(self, name: str, writer: Writer) -> None:
        self.name = name
        self.writer = writer
        self.vectors: dict[str, Vector] = {}
        self.defined: set[str] = set()
        self.handlers: dict[str, Callable[[Vector, dict[str, str]], str | None]] = {}
        self.notes: dict[str, str] = {}  # a message sent with a property's definition
        self.lock = threading.RLock()

    # --- building --------------------------------------------------------------------
    def vector(self, name: str, label: str, group: str, kind: str, elements: list, **extra: object) -> Vector:
        v = Vector(self.name, name, label, group, kind, {e.name: e for e in elements}, **extra)  # type: ignore[arg-type]
        self.vectors[name] = v
        return v

    def on_new(self, name: str, handler: Callable[[Vector, dict[str, str]], str | None]) -> None:
        self.handlers[name] = handler

    # --- sending ---------------------------------------------------------------------
    def exists(self, *names: str) -> None:
        """Mark properties as defined without sending them: indiserver asks for them (getProperties)."""
        self.defined.update(names)

    def define(self, *names: str) -> None:
        for name in names:
            self.defined.add(name)
            self.writer.send(self.vectors[name].define_xml())

    def delete(self, *names: str) -> None:
        for name in names:
            if name in self.defined:
                self.defined.discard(name)
                self.writer.send(self.vectors[name].delete_xml())

    def update(self, name: str, state: str | None = None, message: str | None = None) -> None:
        v = self.vectors[name]
        if state is not None:
            v.state = state  # type: ignore[assignment]
        if name in self.defined:
            self.writer.send(v.set_xml(message))

    def message(self, text: str) -> None:
        self.writer.send(message_xml(self.name, text))

    # --- receiving -------------------------------------------------------------------
    def _get_properties(self, element: ET.Element) -> None:
        if element.get("device") not in (None, self.name):
            return
        wanted = element.get("name")
        for name in list(self.vectors):
            if name in self.defined and (wanted is None or wanted == name):
                self.writer.send(self.vectors[name].define_xml(self.notes.get(name)))

    def handle(self, element: ET.Element) -> None:
        tag = element.tag
        if tag == "getProperties":
            self._get_properties(element)
            return
        if tag not in ("newNumberVector", "newSwitchVector", "newTextVector"):
            return
        device, name, values = parse_new_vector(element)
        if device != self.name:
            return
        with self.lock:
            v = self.vectors.get(name)
            if v is None or name not in self.defined:
                self.message(f"{name!r} is not a property of {self.name} now")
                return
            if v.perm == "ro":
                self.update(name, "Alert", f"{name} is read-only")
                return
            handler = self.handlers.get(name)
            try:
                if handler is None:
                    raise ValueError(f"{name} cannot be set")
                note = handler(v, values)
            except ValueError as exc:
                log.warning("%s: %s", name, exc)
                self.update(name, "Alert", str(exc))
                return
            if note is not None:
                self.update(name, None, note or None)


# --- reading request values ------------------------------------------------------------
def numbers(v: Vector, values: dict[str, str]) -> dict[str, float]:
    """The requested numbers checked against the elements' ranges; the others keep their value."""
    out = {n: float(e.value) for n, e in v.elements.items() if isinstance(e, Number)}
    for name, text in values.items():
        e = v.element(name)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{v.name}.{name}: {text[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{v.name}.{name}: {text[:40]!r} is not a finite number")
        assert isinstance(e, Number)
        if not e.minimum <= value <= e.maximum:
            raise ValueError(f"{v.name}.{name}: {value:g} is outside {e.minimum:g} .. {e.maximum:g}")
        out[name] = value
    return out


def chosen_switch(v: Vector, values: dict[str, str]) -> str:
    """The element a OneOfMany request switches on."""
    for name, text in values.items():
        v.element(name)
        if text not in ("On", "Off"):
            raise ValueError(f"{v.name}.{name}: {text[:20]!r} is neither On nor Off")
    on = [n for n, t in values.items() if t == "On"]
    if len(on) != 1:
        raise ValueError(f"{v.name}: switch exactly one of {', '.join(v.elements)} on")
    return on[0]


def set_switches(v: Vector, on: str | None) -> None:
    for name, e in v.elements.items():
        assert isinstance(e, Switch)
        e.on = name == on


def store(v: Vector, values: dict[str, float]) -> None:
    for name, value in values.items():
        e = v.elements[name]
        assert isinstance(e, Number)
        e.value = value


# --- the allsky camera -------------------------------------------------------------------
CAMERA_PROPERTIES = (
    "CCD_INFO",
    "CCD_EXPOSURE",
    "CCD_ABORT_EXPOSURE",
    "CCD_FRAME_TYPE",
    "CCD_GAIN",
    "CCD_FRAME",
    "CCD_BINNING",
    "CCD_TEMPERATURE",
    "CCD_CFA",
    "CCD1",
)
FRAME_TYPE_SWITCHES = {"FRAME_LIGHT": "light", "FRAME_BIAS": "bias", "FRAME_DARK": "dark", "FRAME_FLAT": "flat"}


class AllskyCamera(Device):
    def __init__(
        self, settings: AllskyCameraSettings, writer: Writer, *, config_file: str = "", config_error: str = ""
    ) -> None:
        super().__init__(settings.device, writer)
        self.settings = settings
        self.renderer = self.make_renderer(settings)
        self.clouds: Clouds = settings.clouds.clouds()
        self.cloud_settings = settings.clouds
        self.clouds_since = self.now()
        self._exposure: threading.Thread | None = None
        self._abort = threading.Event()
        self._build(config_file, config_error)

    @staticmethod
    def make_renderer(s: AllskyCameraSettings) -> AllskyRenderer:
        spec = s.sensor.spec()
        return AllskyRenderer(s.site.site(), spec, s.lens.model(spec.width, spec.height), s.optics.optics())

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.settings.clock_offset_s)

    # --- properties ------------------------------------------------------------------
    def _build(self, config_file: str, config_error: str) -> None:
        s, spec = self.settings, self.renderer.sensor.spec
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
                Text("DRIVER_NAME", "Name", "OBSY sky simulator (allsky)"),
                Text("DRIVER_EXEC", "Exec", "indi_obsy_allsky"),
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
        self._config_error = config_error
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
        self.vector("CCD1", "Image Data", "Image Info", "BLOB", [Blob("CCD1", "Image")], perm="ro")

        c = self.cloud_settings
        self.vector(
            "SIM_CLOUDS",
            "Clouds",
            "Simulation",
            "Switch",
            [Switch(kind.upper(), kind.capitalize(), kind == c.kind) for kind in CLOUD_KINDS],
            rule="OneOfMany",
            state="Ok",
        )
        self.vector(
            "SIM_CLOUD_SETTINGS",
            "Cloud settings",
            "Simulation",
            "Number",
            [
                Number("COVER", "Scattered cover (%)", c.cover, 0, 100, 1, "%3.0f"),
                Number("WIND_SPEED", "Wind (m/s)", c.wind_speed, 0, 60, 0.5, "%4.1f"),
                Number("WIND_FROM", "Wind from (deg)", c.wind_from, 0, 360, 1, "%3.0f"),
                Number("VEIL_TRANSMISSION", "Veil transmission", c.veil_transmission, 0, 1, 0.01, "%4.2f"),
                Number("BANK_TOP", "Bank top at start (deg)", c.bank_top, 1, 90, 1, "%2.0f"),
                Number("SEED", "Pattern seed", c.seed, 0, 1e9, 1, "%.0f"),
            ],
            state="Ok",
        )
        self.vector(
            "SIM_CLOUD_TRUTH",
            "True cloud cover",
            "Simulation",
            "Number",
            [Number("COVER", "Cover (%)", self.clouds.cover(0.0), 0, 100, 0, "%5.1f")],
            perm="ro",
            state="Ok",
        )
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
        self.on_new("CCD_FRAME_TYPE", self._one_of_many)
        self.on_new("CCD_GAIN", self._numbers)
        self.on_new("CCD_FRAME", self._frame)
        self.on_new("CCD_BINNING", self._binning)
        self.on_new("SIM_CLOUDS", self._cloud_kind)
        self.on_new("SIM_CLOUD_SETTINGS", self._cloud_numbers)
        self.on_new("SIM_CLOCK", self._clock)
        self.on_new("SIM_SITE", self._site)

    def start(self) -> None:
        """The properties that exist before connecting: the connection and the simulator's world."""
        self.exists("CONNECTION", "DRIVER_INFO", "SIM_CONFIG", "SIM_CLOUDS", "SIM_CLOUD_SETTINGS", "SIM_CLOUD_TRUTH")
        self.exists("SIM_CLOCK", "SIM_SITE")
        if self._config_error:
            self.notes["SIM_CONFIG"] = self._config_error

    def camera_properties(self) -> tuple[str, ...]:
        return tuple(p for p in CAMERA_PROPERTIES if p != "CCD_CFA" or self.renderer.sensor.spec.bayer)

    # --- handlers ----------------------------------------------------------------------
    def _connection(self, v: Vector, values: dict[str, str]) -> None:
        on = chosen_switch(v, values)
        set_switches(v, on)
        v.state = "Ok"
        if on == "CONNECT":
            self.update("CONNECTION")
            self.define(*(p for p in self.camera_properties() if p not in self.defined))
        else:
            self._abort.set()
            self.update("CONNECTION")
            self.delete(*self.camera_properties())

    def _one_of_many(self, v: Vector, values: dict[str, str]) -> str:
        set_switches(v, chosen_switch(v, values))
        v.state = "Ok"
        return ""

    def _numbers(self, v: Vector, values: dict[str, str]) -> str:
        store(v, numbers(v, values))
        v.state = "Ok"
        return ""

    def _frame(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        spec = self.renderer.sensor.spec
        if n["X"] + n["WIDTH"] > spec.width or n["Y"] + n["HEIGHT"] > spec.height:
            raise ValueError(
                f"CCD_FRAME: {n['WIDTH']:g} x {n['HEIGHT']:g} at ({n['X']:g}, {n['Y']:g}) leaves the "
                f"{spec.width} x {spec.height} sensor"
            )
        store(v, {k: float(round(x)) for k, x in n.items()})
        v.state = "Ok"
        return ""

    def _binning(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        if n["HOR_BIN"] != n["VER_BIN"] or n["HOR_BIN"] != round(n["HOR_BIN"]):
            raise ValueError(
                f"CCD_BINNING: only equal whole binning both ways, not {n['HOR_BIN']:g} x {n['VER_BIN']:g}"
            )
        store(v, n)
        v.state = "Ok"
        return ""

    def _cloud_kind(self, v: Vector, values: dict[str, str]) -> str:
        on = chosen_switch(v, values)
        self._set_clouds(self.cloud_settings.model_copy(update={"kind": on.lower()}))
        set_switches(v, on)
        v.state = "Ok"
        return ""

    def _cloud_numbers(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        updated = self.cloud_settings.model_copy(
            update={
                "cover": n["COVER"],
                "wind_speed": n["WIND_SPEED"],
                "wind_from": n["WIND_FROM"],
                "veil_transmission": n["VEIL_TRANSMISSION"],
                "bank_top": n["BANK_TOP"],
                "seed": int(n["SEED"]),
            }
        )
        self._set_clouds(updated)
        store(v, n)
        v.state = "Ok"
        return ""

    def _set_clouds(self, settings: CloudSettings) -> None:
        clouds = CloudSettings.model_validate(settings.model_dump()).clouds()  # raises ValueError naming the field
        self.clouds, self.cloud_settings, self.clouds_since = clouds, settings, self.now()
        self._publish_truth()

    def _publish_truth(self) -> None:
        elapsed = (self.now() - self.clouds_since).total_seconds()
        truth = self.vectors["SIM_CLOUD_TRUTH"]
        store(truth, {"COVER": round(self.clouds.cover(elapsed), 2)})
        self.update("SIM_CLOUD_TRUTH", "Ok")

    def _clock(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        shift = n["OFFSET_S"] - self.settings.clock_offset_s
        self.settings = self.settings.model_copy(update={"clock_offset_s": n["OFFSET_S"]})
        self.clouds_since += timedelta(seconds=shift)  # the clouds keep their age
        store(v, n)
        v.state = "Ok"
        return ""

    def _site(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        site = self.settings.site.model_copy(
            update={"latitude": n["LAT"], "longitude": n["LONG"], "elevation": n["ELEV"]}
        )
        self.settings = self.settings.model_copy(update={"site": site})
        self.renderer.site = site.site()
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
        request = self._request(seconds)
        self._exposure = threading.Thread(target=self._run_exposure, args=(request,), name="exposure", daemon=True)
        self._exposure.start()
        return ""

    def _request(self, seconds: float) -> dict:
        """Everything an exposure needs, fixed when it starts (later changes apply to the next one)."""
        frame = self.vectors["CCD_FRAME"].values()
        return {
            "seconds": seconds,
            "started": self.now(),
            "monotonic": time.monotonic(),
            "gain": float(self.vectors["CCD_GAIN"].values()["GAIN"]),
            "frame_type": FRAME_TYPE_SWITCHES[self.vectors["CCD_FRAME_TYPE"].on_switch() or "FRAME_LIGHT"],
            "binning": int(self.vectors["CCD_BINNING"].values()["HOR_BIN"]),
            "roi": tuple(int(frame[k]) for k in ("X", "Y", "WIDTH", "HEIGHT")),
            "clouds": self.clouds,
            "elapsed": (self.now() - self.clouds_since).total_seconds(),
            "renderer": self.renderer,
            "settings": self.settings,
        }

    def _run_exposure(self, r: dict) -> None:
        log.info("%s exposure of %g s started (simulated time %s)", r["frame_type"], r["seconds"], r["started"])
        try:
            frame = r["renderer"].render(
                r["started"], r["seconds"], r["gain"], r["clouds"], elapsed_s=r["elapsed"], frame_type=r["frame_type"]
            )
            data = frame_fits(
                frame, r["settings"], r["renderer"], roi=r["roi"], binning=r["binning"], instrument=self.name
            )
            end = r["monotonic"] + r["seconds"]
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
                if frame.cloud_cover is not None:
                    store(self.vectors["SIM_CLOUD_TRUTH"], {"COVER": round(frame.cloud_cover, 2)})
                    self.update("SIM_CLOUD_TRUTH", "Ok")
        except Exception as exc:  # a failed frame must never take the driver down
            log.exception("exposure failed")
            with self.lock:
                self.update("CCD_EXPOSURE", "Alert", f"exposure failed: {exc}")

    def _abort_exposure(self, v: Vector, values: dict[str, str]) -> str:
        self._abort.set()
        set_switches(v, None)
        v.state = "Ok"
        return ""


def frame_fits(
    frame: RenderedFrame,
    settings: AllskyCameraSettings,
    renderer: AllskyRenderer,
    *,
    roi: tuple[int, int, int, int] | None = None,
    binning: int = 1,
    instrument: str | None = None,
) -> bytes:
    """The FITS file of a rendered frame as the camera sends it: cropped to ``roi`` (x, y, width,
    height), binned, with INDI's keywords and the simulator's truths (SIMCLOUD, SIMCOVER)."""
    image = frame.image
    x, y = 0, 0
    if roi is not None:
        x, y, w, h = roi
        image = image[y : y + h, x : x + w]
    if binning > 1:
        image = bin_image(image, binning)
    spec = renderer.sensor.spec
    simulator: dict = {}
    if frame.frame_type == "light":
        simulator["SIMCLOUD"] = (
            settings.clouds.kind if frame.clouds is None else frame.clouds.kind,
            "simulated clouds",
        )
    if frame.cloud_cover is not None:
        simulator["SIMCOVER"] = (round(frame.cloud_cover, 2), "true cloud cover above 20 deg (%)")
    description = FrameDescription(
        instrument=instrument or settings.device,
        frame_type=frame.frame_type,
        exposure_s=frame.exposure_s,
        gain=frame.gain,
        offset_adu=spec.offset_adu,
        temperature_c=spec.temperature_c,
        pixel_um=spec.pixel_um,
        binning=binning,
        started=frame.when,
        bayer=spec.bayer if (x % 2, y % 2) == (0, 0) else None,
        latitude=settings.site.latitude,
        longitude=settings.site.longitude,
        simulator=simulator,
    )
    return fits_bytes(np.ascontiguousarray(image), description)


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor`` x ``factor`` block (the edge that does not fill a block is dropped)."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor).astype(np.float32)
    return np.clip(blocks.mean(axis=(1, 3)) + 0.5, 0, 65535).astype(np.uint16)


# --- running under indiserver ---------------------------------------------------------------
def run(device: Device, reader: Reader) -> None:
    """Answer requests until indiserver closes our input. Broken XML is logged and skipped."""
    while True:
        try:
            for element in reader.elements():
                device.handle(element)
            return
        except ET.ParseError as exc:
            log.warning("ignoring unreadable input from indiserver: %s", exc)
            reader.reset()


def main_allsky() -> None:
    # stdout is the INDI stream; indiserver copies a driver's stderr into its log.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="obsy-skysim %(levelname)s %(message)s")
    config_error = ""
    try:
        config = load_config()
    except ConfigError as exc:
        config_error = f"{exc}; running with the default settings"
        log.error(config_error)
        config = SkySimConfig()
    camera = AllskyCamera(
        config.allsky, Writer(), config_file=os.environ.get(CONFIG_ENV, ""), config_error=config_error
    )
    camera.start()
    log.info("%s ready (settings: %s)", camera.name, os.environ.get(CONFIG_ENV) or "defaults")
    run(camera, Reader())
