"""INDI drivers of the sky simulator, started by indiserver like any other driver.

``indi_obsy_allsky`` is an allsky camera, ``indi_obsy_camera`` the main camera behind the telescope.
Both have INDI's standard CCD properties (what OBSY's allsky service, KStars/Ekos and any INDI
client use; see :mod:`.camera_device`) and the simulator's own. The allsky camera's:

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

The main camera's: SIM_POINTING (RA hours, DEC degrees, of date: what the mount reports; kept
up to date by snooping the mount's EQUATORIAL_EOD_COORD) and SIM_FILTER (SLOT, snooped from the
filter wheel's FILTER_SLOT): each filter has its own dust on the flat field.

A wrong value (not a number, out of range, an unknown element) is answered with the property
in Alert and a message naming what is wrong; the previous value stays and the driver goes on.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from obsy_skysim import warm_up
from obsy_skysim.allsky import AllskyRenderer, RenderedFrame
from obsy_skysim.camera_device import CameraDevice, Exposure, Rendered, camera_fits
from obsy_skysim.clouds import CLOUD_KINDS, Clouds
from obsy_skysim.config import (
    CONFIG_ENV,
    AllskyCameraSettings,
    CloudSettings,
    ConfigError,
    MainCameraSettings,
    SkySimConfig,
    load_config,
)
from obsy_skysim.field import FieldRenderer
from obsy_skysim.indi_device import chosen_switch, numbers, run, set_switches, store
from obsy_skysim.indi_xml import Number, Reader, Switch, Vector, Writer
from obsy_skysim.scenario import Scenario, ScenarioError, load_scenario

log = logging.getLogger("obsy.skysim")


# --- the allsky camera -------------------------------------------------------------------
class AllskyCamera(CameraDevice):
    def __init__(
        self, settings: AllskyCameraSettings, writer: Writer, *, config_file: str = "", config_error: str = ""
    ) -> None:
        self.renderer = self.make_renderer(settings)
        super().__init__(
            settings,
            self.renderer.sensor.spec,
            writer,
            driver_exec="indi_obsy_allsky",
            driver_name="OBSY sky simulator (allsky)",
            config_file=config_file,
            config_error=config_error,
        )
        self.settings: AllskyCameraSettings = settings
        self.clouds: Clouds = settings.clouds.clouds()
        self.cloud_settings = settings.clouds
        self.clouds_since = self.now()
        self._build_clouds()

    @staticmethod
    def make_renderer(s: AllskyCameraSettings) -> AllskyRenderer:
        spec = s.sensor.spec()
        return AllskyRenderer(s.site.site(), spec, s.lens.model(spec.width, spec.height), s.optics.optics())

    def world_properties(self) -> tuple[str, ...]:
        return ("SIM_CLOUDS", "SIM_CLOUD_SETTINGS", "SIM_CLOUD_TRUTH")

    def _build_clouds(self) -> None:
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
        self.on_new("SIM_CLOUDS", self._cloud_kind)
        self.on_new("SIM_CLOUD_SETTINGS", self._cloud_numbers)

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
        store(self.vectors["SIM_CLOUD_TRUTH"], {"COVER": round(self.clouds.cover(0.0), 2)})
        self.update("SIM_CLOUD_TRUTH", "Ok")

    def clock_shifted(self, seconds: float) -> None:
        self.clouds_since += timedelta(seconds=seconds)  # the clouds keep their age

    def site_changed(self) -> None:
        self.renderer.site = self.settings.site.site()

    def scene(self) -> tuple[AllskyRenderer, Clouds, float]:
        return self.renderer, self.clouds, (self.now() - self.clouds_since).total_seconds()

    def render(self, e: Exposure) -> Rendered:
        renderer, clouds, elapsed = e.scene
        frame = renderer.render(e.started, e.seconds, e.gain, clouds, elapsed_s=elapsed, frame_type=e.frame_type)
        after = None if frame.cloud_cover is None else {"SIM_CLOUD_TRUTH": {"COVER": round(frame.cloud_cover, 2)}}
        return Rendered(frame.image, allsky_truths(frame), after)


def allsky_truths(frame: RenderedFrame) -> dict:
    """The SIM* FITS keywords of an allsky frame: the clouds and their true cover."""
    keys: dict = {}
    if frame.clouds is not None:
        keys["SIMCLOUD"] = (frame.clouds.kind, "simulated clouds")
    if frame.cloud_cover is not None:
        keys["SIMCOVER"] = (round(frame.cloud_cover, 2), "true cloud cover above 20 deg (%)")
    return keys


def frame_fits(frame: RenderedFrame, settings: AllskyCameraSettings, renderer: AllskyRenderer) -> bytes:
    """The FITS file of a rendered allsky frame, as the driver sends it."""
    return camera_fits(
        frame.image,
        renderer.sensor.spec,
        settings,
        frame_type=frame.frame_type,
        exposure_s=frame.exposure_s,
        gain=frame.gain,
        started=frame.when,
        simulator=allsky_truths(frame),
    )


# --- the main camera -----------------------------------------------------------------------
def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class MainCamera(CameraDevice):
    """The camera behind the telescope: renders the field where the mount points."""

    def __init__(
        self, settings: MainCameraSettings, writer: Writer, *, config_file: str = "", config_error: str = ""
    ) -> None:
        spec = settings.sensor.spec()
        self.renderer = self.make_renderer(settings)
        self.scenario: Scenario | None = None
        self._scenario_read: int | None = None  # the scenario file's mtime (ns) when last read
        if settings.scenario:
            self._scenario_read = _mtime_ns(settings.scenario)
            try:
                self.scenario = load_scenario(settings.scenario)
            except ScenarioError as exc:
                log.error("%s; running without it", exc)
                config_error = "; ".join(filter(None, [config_error, f"{exc}; running without it"]))
        super().__init__(
            settings,
            spec,
            writer,
            driver_exec="indi_obsy_camera",
            driver_name="OBSY sky simulator (main camera)",
            config_file=config_file,
            config_error=config_error,
        )
        self.settings: MainCameraSettings = settings
        self.cloud_settings = settings.clouds
        self.clouds: Clouds = settings.clouds.clouds()
        self.clouds_since = self.now()
        self.moved_at = self.now()  # tracking drift counts from the mount's last move
        self.filter_names: dict[int, str] = {}  # the wheel's FILTER_NAME by slot, snooped
        self.vector(
            "SIM_POINTING",
            "Pointing (of date)",
            "Simulation",
            "Number",
            [
                Number("RA", "RA (hours)", 0.0, 0, 24, 0, "%10.6m"),
                Number("DEC", "DEC (deg)", 90.0, -90, 90, 0, "%10.6m"),
            ],
            state="Idle",
        )
        self.vector(
            "SIM_FILTER", "Filter", "Simulation", "Number", [Number("SLOT", "Slot", 1, 1, 99, 1, "%.0f")], state="Ok"
        )
        self.on_new("SIM_POINTING", self._pointing)
        self.on_new("SIM_FILTER", self._filter)

    @staticmethod
    def make_renderer(s: MainCameraSettings) -> FieldRenderer:
        return FieldRenderer(s.site.site(), s.sensor.spec(), s.telescope.optics())

    def world_properties(self) -> tuple[str, ...]:
        return ("SIM_POINTING", "SIM_FILTER")

    def start(self) -> None:
        super().start()
        # Snoop the mount, the filter wheel and the allsky simulator's clouds: indiserver sends us
        # their updates from now on, so one command makes it cloudy for both cameras.
        snooped = [(self.settings.mount_device, "EQUATORIAL_EOD_COORD"), (self.settings.filter_device, "FILTER_SLOT")]
        snooped += [(self.settings.filter_device, "FILTER_NAME")]
        if self.settings.clouds_from:
            snooped += [(self.settings.clouds_from, "SIM_CLOUDS"), (self.settings.clouds_from, "SIM_CLOUD_SETTINGS")]
        for device, prop in snooped:
            self.writer.send(f'<getProperties version="1.7" device="{_xml(device)}" name="{prop}"/>\n')

    def handle(self, element: ET.Element) -> None:
        if element.tag in ("defNumberVector", "setNumberVector") and element.get("device") != self.name:
            self._snooped(element)
            return
        if element.tag in ("defSwitchVector", "setSwitchVector") and element.get("device") != self.name:
            self._snooped_clouds(element)
            return
        if element.tag in ("defTextVector", "setTextVector") and element.get("device") != self.name:
            self._snooped_filter_names(element)
            return
        super().handle(element)

    def _snooped_filter_names(self, element: ET.Element) -> None:
        """The wheel's names of its slots, for the frames' FILTER (as INDI's CCD drivers write it)."""
        if element.get("device") != self.settings.filter_device or element.get("name") != "FILTER_NAME":
            return
        names = {}
        for child in element:
            digits = re.findall(r"\d+", child.get("name", ""))
            if digits and (child.text or "").strip():
                names[int(digits[-1])] = (child.text or "").strip()
        with self.lock:
            self.filter_names.update(names)

    def _snooped_clouds(self, element: ET.Element) -> None:
        if element.get("device") != self.settings.clouds_from or element.get("name") != "SIM_CLOUDS":
            return
        on = [c.get("name", "") for c in element if (c.text or "").strip() == "On"]
        if len(on) == 1 and on[0].lower() != self.cloud_settings.kind:
            self._follow_clouds({"kind": on[0].lower()})

    def _follow_clouds(self, update: dict) -> None:
        try:
            settings = CloudSettings.model_validate({**self.cloud_settings.model_dump(), **update})
            clouds = settings.clouds()
        except ValueError as exc:
            log.warning("ignoring the clouds of %s: %s", self.settings.clouds_from, exc)
            return
        with self.lock:
            self.cloud_settings, self.clouds, self.clouds_since = settings, clouds, self.now()
        log.info("following %s: %s clouds", self.settings.clouds_from, settings.kind)

    def _snooped(self, element: ET.Element) -> None:
        device, name = element.get("device"), element.get("name")
        values = {}
        for child in element:
            try:
                values[child.get("name", "")] = float((child.text or "").strip())
            except ValueError:
                log.warning("ignoring %s.%s: %r is not a number", device, name, child.text)
                return
        if device == self.settings.clouds_from and name == "SIM_CLOUD_SETTINGS":
            names = {"COVER": "cover", "WIND_SPEED": "wind_speed", "WIND_FROM": "wind_from"}
            names |= {"VEIL_TRANSMISSION": "veil_transmission", "BANK_TOP": "bank_top", "SEED": "seed"}
            update = {field: values[key] for key, field in names.items() if key in values}
            if "seed" in update:
                update["seed"] = int(update["seed"])
            if any(getattr(self.cloud_settings, k) != v for k, v in update.items()):
                self._follow_clouds(update)
            return
        with self.lock:
            if device == self.settings.mount_device and name == "EQUATORIAL_EOD_COORD" and {"RA", "DEC"} <= set(values):
                self._note_move(values["RA"], values["DEC"])
                store(
                    self.vectors["SIM_POINTING"],
                    {"RA": values["RA"] % 24.0, "DEC": max(-90.0, min(90.0, values["DEC"]))},
                )
                self.update("SIM_POINTING", "Ok")
            elif device == self.settings.filter_device and name == "FILTER_SLOT" and "FILTER_SLOT_VALUE" in values:
                store(self.vectors["SIM_FILTER"], {"SLOT": max(1.0, round(values["FILTER_SLOT_VALUE"]))})
                self.update("SIM_FILTER", "Ok")

    def _pointing(self, v: Vector, values: dict[str, str]) -> str:
        n = numbers(v, values)
        self._note_move(n["RA"], n["DEC"])
        return self.plain_numbers(v, values)

    def _note_move(self, ra_hours: float, dec: float) -> None:
        """Restart the tracking drift when the pointing moves by more than an arcminute (a slew, a
        dither); a tracking mount's own updates move it by far less."""
        old = self.vectors["SIM_POINTING"].values()
        d_ra = ((ra_hours - float(old["RA"]) + 12.0) % 24.0 - 12.0) * 15.0 * math.cos(math.radians(dec))
        if math.hypot(d_ra, dec - float(old["DEC"])) > 1.0 / 60.0:
            self.moved_at = self.now()

    def _filter(self, v: Vector, values: dict[str, str]) -> str:
        return self.plain_numbers(v, values)

    def site_changed(self) -> None:
        self.renderer.site = self.settings.site.site()

    def clock_shifted(self, seconds: float) -> None:
        self.clouds_since += timedelta(seconds=seconds)
        self.moved_at += timedelta(seconds=seconds)

    def scene(self) -> tuple[float, float, int, Clouds, float, float]:
        pointing = self.vectors["SIM_POINTING"].values()
        slot = int(self.vectors["SIM_FILTER"].values()["SLOT"])
        now = self.now()
        elapsed = (now - self.clouds_since).total_seconds()
        tracked = (now - self.moved_at).total_seconds()
        return float(pointing["RA"]), float(pointing["DEC"]), slot, self.clouds, elapsed, tracked

    def current_scenario(self) -> Scenario | None:
        """The scenario, read again when its file changes (as the services read an ephemeris file again):
        a science night's times can be moved once the observatory is up. A file that no longer reads leaves
        the last one in use."""
        path = self.settings.scenario
        if not path or (mtime := _mtime_ns(path)) == self._scenario_read:
            return self.scenario
        self._scenario_read = mtime
        try:
            self.scenario = load_scenario(path)
            log.info("scenario %s read again", path)
        except ScenarioError as exc:
            log.error("%s; keeping the scenario read before", exc)
        return self.scenario

    def render(self, e: Exposure) -> Rendered:
        ra_hours, dec, slot, clouds, elapsed, tracked = e.scene
        ra, dec = of_date_to_icrs(ra_hours * 15.0, dec, e.started)
        east, north = (rate * tracked / 60.0 / 3600.0 for rate in self.settings.drift_arcsec_per_min)
        ra, dec = (ra + east / max(math.cos(math.radians(dec)), 1e-6)) % 360.0, max(-90.0, min(90.0, dec + north))
        frame = self.renderer.render(
            e.started,
            (ra, dec),
            e.seconds,
            e.gain,
            frame_type=e.frame_type,  # type: ignore[arg-type]
            filter_slot=slot,
            clouds=clouds,
            elapsed_s=elapsed,
            scenario=self.current_scenario(),
        )
        keys = {
            "RA": (round(ra, 6), "pointing, ICRS (degrees)"),
            "DEC": (round(dec, 6), "pointing, ICRS (degrees)"),
            "EQUINOX": (2000.0, "equinox of RA and DEC"),
            "FOCALLEN": (self.renderer.optics.focal_length_mm, "focal length (mm)"),
            "APTDIA": (self.renderer.optics.aperture_mm, "aperture diameter (mm)"),
            "SIMFILT": (slot, "filter slot"),
        }
        spec = self.renderer.sensor.spec  # what photometry's noise model reads (as cameras that write these do)
        keys["EGAIN"] = (round(1.0 / spec.adu_per_electron(e.gain), 5), "electrons per ADU at this gain")
        keys["RDNOISE"] = (spec.read_noise_e, "read noise (electrons)")
        with self.lock:
            name = self.filter_names.get(slot)
        if name:
            keys["FILTER"] = (name, "filter (the wheel's name of the slot)")
        if frame.truth is not None:
            keys["SIMSTARS"] = (len(frame.truth.x), "stars rendered in the field")
            keys["SIMVARS"] = (len(frame.truth.variables), "scenario stars in the field")
            keys["SIMCLOUD"] = (clouds.kind, "simulated clouds")
            keys["SIMTRANS"] = (round(frame.truth.transmission, 4), "cloud transmission towards the field")
        return Rendered(frame.image, keys)


def of_date_to_icrs(ra_deg: float, dec_deg: float, when: datetime) -> tuple[float, float]:
    """A position of date (what INDI mounts report as EQUATORIAL_EOD_COORD) in ICRS degrees."""
    import astropy.units as u
    from astropy.coordinates import FK5, SkyCoord
    from astropy.time import Time

    coord = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame=FK5(equinox=Time(when))).icrs
    return float(coord.ra.deg), float(coord.dec.deg)


def _xml(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(text, {'"': "&quot;"})


# --- running under indiserver ---------------------------------------------------------------
def _settings() -> tuple[SkySimConfig, str]:
    # stdout is the INDI stream; indiserver copies a driver's stderr into its log.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="obsy-skysim %(levelname)s %(message)s")
    try:
        return load_config(), ""
    except ConfigError as exc:
        error = f"{exc}; running with the default settings"
        log.error(error)
        return SkySimConfig(), error


def _serve(camera: CameraDevice) -> None:
    # The numba kernels compile (or load from numba's cache) while the client connects: an
    # exposure started meanwhile waits for them, not for a second compile.
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    camera.start()
    log.info("%s ready (settings: %s)", camera.name, os.environ.get(CONFIG_ENV) or "defaults")
    run(camera, Reader())


def main_allsky() -> None:
    config, error = _settings()
    _serve(AllskyCamera(config.allsky, Writer(), config_file=os.environ.get(CONFIG_ENV, ""), config_error=error))


def main_camera() -> None:
    config, error = _settings()
    _serve(MainCamera(config.camera, Writer(), config_file=os.environ.get(CONFIG_ENV, ""), config_error=error))
