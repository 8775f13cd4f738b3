"""The allsky service: capture from an INDI camera, process, store, publish.

A capture thread runs one frame after another (``camera.interval_s`` apart): choose exposure
and gain (auto-exposure, day/night by sun altitude), expose a bracket of up to
``camera.bracket`` frames (longest first, stopping early when the last one no longer clips),
run the pipeline (its overlay gets the frame's time, exposure, gain, bracket, sun and moon as a
:class:`~obsy_allsky.pipeline.overlay.FrameInfo`), store the picture in the configured format
(``pipeline.output``: JPEG or PNG, plus the fused linear FITS with ``keep_linear`` and the raw
FITS with ``keep_fits``) under ``<data_dir>/allsky/<night>/``, then publish an
:class:`~obsy.messages.AllskyFrame` event with the file URL on ``allsky/frames``, a small
retained JPEG on ``allsky/image`` (Home Assistant's image entity) and the retained
:class:`~obsy.messages.AllskyState`. Hot pixels of the bad-pixel map (built from the master
darks) are repaired in every raw frame before the pipeline sees it.

Failures never end the service: a camera that stops answering is reported (state, event,
health) and reconnected; an image that arrives corrupt is counted and skipped without a
reconnect; a full disk is reported once, frames are not stored while it lasts, the preview
and the state go on, and storing resumes when there is room. An encoder that fails (picture,
FITS or preview) is reported once while it fails, that file is left out, and the rest goes on.

Master darks are captured on command (``allsky/darks/set``, see
:class:`~obsy.messages.AllskyDarksCommand`) by the capture thread between two frames, with
progress and result on the retained ``allsky/darks/state``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np

from obsy import astro
from obsy.homeassistant import Entity
from obsy.indi import IndiClient
from obsy.messages import (
    AllskyDarksCommand,
    AllskyDarksState,
    AllskyFrame,
    AllskyState,
    AllskyStreak,
    CommandAnswer,
    CommandOrigin,
    Event,
    EventKind,
)
from obsy.runner import Service
from obsy.skymodel import SkyModel
from obsy.upload.site import SiteUploads
from obsy_allsky import ha
from obsy_allsky.backend import NumpyBackend
from obsy_allsky.capture.badpixels import colour_step
from obsy_allsky.capture.camera import CameraError, CorruptFrameError, IndiCamera, RawFrame
from obsy_allsky.capture.darks import DarkLibrary, capture_masters
from obsy_allsky.capture.exposure import AutoExposure, ExposureSetting, Sky, measure_brightness
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.chain import FramePipeline, ProcessedFrame
from obsy_allsky.pipeline.output import encode_fits
from obsy_allsky.pipeline.overlay import FrameInfo, model_fits_picture
from obsy_allsky.products.nightly import NightlyProducts
from obsy_allsky.skysource import SkyModelSource, names_wanted
from obsy_allsky.storage import FrameStore, StorageError, StoredFrame, encode_jpeg
from obsy_allsky.streaks import StreakDetector, StreakSettings, crop_png

#: Seconds to wait before trying a camera again after it failed to come back.
RETRY_S = 5.0
#: Exposure modes whose frames are searched for meteors and satellites (dark sky; the Moon is masked).
STREAK_MODES = ("night", "moon")

T = TypeVar("T")


def frame_info(
    taken_at: datetime,
    zone: ZoneInfo,
    sky: Sky,
    raws: list[RawFrame],
    *,
    sky_model: SkyModel | None = None,
    site: Any = None,
) -> FrameInfo:
    """What the overlay writes about a frame: local time at the site, the bracket's longest exposure, sun, moon;
    with the camera's sky model and the site, the names on the sky.

    Stars and SQM are not part of it: the pipeline measures them before the overlay runs.
    """
    longest = raws[0]
    return FrameInfo(
        taken_at=taken_at.astimezone(zone),
        exposure_s=longest.exposure_s,
        gain=longest.gain,
        bracket=len(raws),
        sun_altitude=sky.sun_altitude,
        moon_altitude=sky.moon_altitude,
        moon_illumination=sky.moon_illumination,
        sky_model=sky_model,
        site=site,
    )


def linear_fits_header(info: FrameInfo, raws: list[RawFrame], camera: str, full_scale: float) -> dict[str, Any]:
    """FITS header cards of the fused linear RGB: when, how long, at what gain, how many exposures fused."""
    longest = raws[0]
    header: dict[str, Any] = {
        "IMAGETYP": ("Light", "fused linear RGB, before the finishing stages"),
        "INSTRUME": (camera, "INDI camera"),
        "DATE-OBS": (
            info.taken_at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds"),
            "UTC start of the frame",
        ),
        "EXPTIME": (longest.exposure_s, "[s] longest exposure of the bracket"),
        "NCOMBINE": (len(raws), "exposures fused (HDR)"),
        "XBINNING": longest.binning,
        "YBINNING": longest.binning,
        "FULLSCAL": (full_scale, "[ADU] raw value of 1.0 in this image"),
    }
    for number, raw in enumerate(raws, start=1):
        header[f"EXPTIME{number}"] = (raw.exposure_s, f"[s] exposure {number} of the bracket")
    optional = {
        "GAIN": (longest.gain, "camera gain"),
        "CCD-TEMP": (longest.temperature_c, "[C] sensor temperature"),
        "SUNALT": (info.sun_altitude, "[deg] altitude of the Sun"),
        "MOONALT": (info.moon_altitude, "[deg] altitude of the Moon"),
        "MOONILL": (info.moon_illumination, "illuminated fraction of the Moon"),
    }
    header.update({key: (round(value, 4), comment) for key, (value, comment) in optional.items() if value is not None})
    return header


#: What of a night's products goes to a fleet's centre: the pictures and films, and the summary
#: (the figures of the night's summary card); the centre takes no other file.
PRODUCT_MEDIA = frozenset({".jpg", ".jpeg", ".png", ".webp", ".mp4", ".webm"})
PRODUCT_SUMMARY = "summary.json"


class AllskyService(Service):
    name = "allsky"
    #: The pictures' way to the centre (``upload``); None where this site sends none.
    uploads: SiteUploads | None = None

    def start(self) -> None:
        s = self.settings
        self.pipeline = FramePipeline(s.pipeline)
        self.store = FrameStore(self.config.data_dir)
        self.darks = DarkLibrary(self.store.root / "darks", tolerance_c=s.camera.dark_tolerance_c)
        self.auto = AutoExposure(s.exposure)
        self.client = IndiClient.from_config(self.config.indi, timeout=10.0, reconnect_interval=1.0)
        self.camera = IndiCamera(self.client, s.camera.device, readout_margin_s=s.camera.readout_margin_s)
        self.state = AllskyState(backend=self.pipeline.backend.name)
        self.darks_state = AllskyDarksState()
        self.frames_done = 0
        self.storage_failures = 0
        self.encode_failures = 0
        self._encode_errors: dict[str, str] = {}  # what cannot be encoded now → why (reported once)
        self._zone = ZoneInfo(self.config.site.timezone)
        # One source of the sky model for its two users: the names on the sky, and the streaks' alt/az
        # where no fixed streaks.sky_model is configured.
        self._names = names_wanted(self.config)
        fixed_lens = s.streaks.sky_model
        users = ["names on the sky"] if self._names else []
        if s.streaks.enabled and fixed_lens is None:
            users.append("the streaks' alt/az")
        self.sky_models = SkyModelSource(self.config, self.log, " and ".join(users)) if users else None
        self._cpu = NumpyBackend()
        self._last: tuple[float, float] | None = None  # (brightness, exposure) of the last frame
        self._last_setting: ExposureSetting | None = None
        self._last_bracket: list[float] = []  # exposures of the last frame's bracket
        self._darks_request: AllskyDarksCommand | None = None
        self._range_reported: set[str] = set()  # configured values outside the camera's range, said once
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # ends the pause between frames early (a command, stop)
        # Pictures to the centre by HTTP where this site is one of a fleet (upload.url); None: not sent.
        self.uploads = SiteUploads.from_config(self.config)
        self._publish_state()
        self.bus.publish(self.topics.allsky_darks_state, self.darks_state, qos=1, retain=True)
        self.bus.subscribe(self.topics.allsky_darks_command, self._on_darks_command, AllskyDarksCommand)
        # Night products: each frame's thumbnail and log line; the night's products when it ends.
        self.products = NightlyProducts(self.config, self.bus, on_built=self._send_products)
        self.products.start(astro.night_of(self.config.site, self.clock()))
        self.streak_lens = SkyModel.from_dict(fixed_lens.model_dump()) if fixed_lens is not None else None
        self._lens_for: tuple[Any, SkyModel | None] | None = None  # (model, raw shape, scale) → the detector's lens
        self.streaks = StreakDetector(
            StreakSettings(min_snr=s.streaks.min_snr),
            backend=self.pipeline.backend,
            lens=self.streak_lens,
            bayer=colour_step(s.pipeline.bayer_pattern) == 2,
        )
        self.streaks_found = 0
        self._streaks_failing = False
        self._thread = threading.Thread(target=self._capture_loop, name="allsky-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        # Disconnecting ends a wait for an image at once; the capture thread then sees the stop.
        self.client.disconnect()
        self._thread.join(timeout=10)
        self.products.stop()
        if self.uploads is not None:
            self.uploads.stop()

    #: Set by the disk watch at ``critical``: the optional files (raw and linear FITS, streak crops) are not
    #: written; the picture and the one without the overlay (what clouddetect judges) still are.
    disk_critical = False

    def disk_paths(self) -> dict[str, Path]:
        return {"images": self.store.root}

    def on_disk_level(self, level: str) -> None:
        self.disk_critical = level == "critical"
        if self.disk_critical:
            self.log.warning(
                "the disk is nearly full: raw and linear FITS and streak crops are not kept until there is room",
                extra={"event": "optional_files_off"},
            )

    def _send_products(self, night: date, files: list[Path]) -> None:
        """A night's products (keogram, star trails, timelapse, panorama, their thumbnails and summary.json) to the
        centre, where this site is one of a fleet."""
        if self.uploads is None:
            return
        for path in files:
            if path.suffix.lower() in PRODUCT_MEDIA or path.name == PRODUCT_SUMMARY:
                self.uploads.send(path)

    def health_details(self) -> dict[str, Any]:
        return {
            "camera": self.state.camera,
            "camera_failures": self.camera.failures,
            "camera_recoveries": self.camera.recoveries,
            "corrupt_frames": self.camera.corrupt_frames,
            "storage_failures": self.storage_failures,
            "storage_error": self.state.storage_error,
            "encode_failures": self.encode_failures,
            "encode_errors": dict(self._encode_errors),
            "darks": self.darks_state.status,
            "frames": self.frames_done,
            "streaks": self.streaks_found,
            "backend": self.pipeline.backend.name,
            "sky_model": self.sky_models.source if self.sky_models is not None else "not used",
            "uploads": self.uploads.health() if self.uploads is not None else None,
        }

    # --- the capture loop ------------------------------------------------------------
    def _capture_loop(self) -> None:
        ready = False
        while not self._stopping.is_set():
            started = time.monotonic()
            pause = self.settings.camera.interval_s
            try:
                if not ready:
                    self._prepare_camera()
                    ready = True
                with self._lock:
                    request, self._darks_request = self._darks_request, None
                if request is not None:
                    self._capture_darks(request)
                    pause = 0.0
                else:
                    self.capture_frame()
            except CorruptFrameError as exc:
                # The camera answered with a broken image: skip it, no reconnect.
                self._report(EventKind.FRAME_CORRUPT, "warning", str(exc))
                self._update(corrupt_frames=self.camera.corrupt_frames)
                pause = 0.0
            except CameraError as exc:
                if self._stopping.is_set():
                    break  # the exposure was cut short by stop()
                ready = self._camera_failed(exc)
                pause = 0.0 if ready else RETRY_S
            except Exception as exc:  # a bad frame must not end the capture
                self.log.exception("frame failed", extra={"event": "frame_failed"})
                self._report(EventKind.FRAME_FAILED, "error", f"{type(exc).__name__}: {exc}")
            if self._wake.wait(max(0.0, pause - (time.monotonic() - started))):
                self._wake.clear()

    def _prepare_camera(self) -> None:
        """Connect and apply the settings: at the start, and on each retry while the camera is lost."""
        cam = self.settings.camera
        self.camera.prepare()
        self.camera.set_binning(cam.binning)
        if cam.cooling_c is not None:
            self.camera.set_cooling(cam.cooling_c)
        self._check_camera_ranges()
        if self.state.camera == "lost":
            self.camera.recoveries += 1
            self._report(EventKind.CAMERA_RECOVERED, "info", f"camera {self.camera.device!r} answers again")
        self._update(camera="ok", camera_error=None)

    def _check_camera_ranges(self) -> None:
        """Say once (an error event) which configured values the camera does not accept.

        The camera keeps every number within the range its driver declares (an exposure at a
        refused gain would fail every time, and quietly so): the frames go on at the nearest value
        the camera takes, and the state shows the gain actually used.
        """
        exposure, cam = self.settings.exposure, self.settings.camera
        checks = [
            ("allsky.exposure.night.gain", "CCD_GAIN", "GAIN", exposure.night.gain),
            ("allsky.exposure.day.gain", "CCD_GAIN", "GAIN", exposure.day.gain),
            ("allsky.exposure.moon.profile.gain", "CCD_GAIN", "GAIN", exposure.moon.profile.gain),
            ("allsky.camera.binning", "CCD_BINNING", "HOR_BIN", cam.binning),
        ]
        if cam.cooling_c is not None:
            checks.append(("allsky.camera.cooling_c", "CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE", cam.cooling_c))
        for key, prop, element, value in checks:
            why = self.camera.out_of_range(prop, element, value)
            if why is None or key in self._range_reported:
                continue
            self._range_reported.add(key)
            used = self.camera.within_limits(prop, element, value)
            self._report(
                EventKind.SETTING_OUT_OF_RANGE, "error", f"{key}: {why}; using {used:g} instead (fix the config)"
            )

    def _camera_failed(self, exc: CameraError) -> bool:
        """Report the failure (once while the camera stays lost) and reconnect; True when it answers again."""
        if self.state.camera == "lost":
            self._update(camera_error=str(exc), camera_failures=self.camera.failures)
        else:
            self._update(camera="failing", camera_error=str(exc), camera_failures=self.camera.failures)
            self._report(EventKind.CAMERA_FAILED, "warning", str(exc))
        if self._stopping.is_set():
            return False
        if self.camera.recover():
            self._update(camera="ok", camera_error=None)
            self._report(EventKind.CAMERA_RECOVERED, "info", f"camera {self.camera.device!r} answers again")
            return True
        self._update(camera="lost", camera_error=self.camera.last_error)
        return False

    def capture_frame(self) -> ProcessedFrame:
        """One frame: expose the bracket, process, store, publish."""
        s = self.settings
        now = self.clock()
        # To the millisecond, as the frame's id records it: the id then names the very instant the
        # overlay (names on the sky) was drawn for, and anyone can draw it again from the stored frame.
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        sky = Sky.at(self.config.site, now)
        brightness, last_exposure = self._last if self._last else (None, None)
        setting = self.auto.next(brightness, last_exposure, sky)
        self._last_setting = setting
        self.camera.set_gain(setting.gain)
        raws = self._bracket(setting.exposure_s, setting.mode)
        self._last_bracket = [r.exposure_s for r in raws]
        longest = raws[0]
        mask = self._circle(longest.data.shape)
        self._last = (measure_brightness(longest.data, s.pipeline.full_scale, mask), longest.exposure_s)

        darks = [self._dark_for(r) for r in raws]
        images, darks, bad_pixels = self._repair_bad_pixels(raws, darks)
        model = self.sky_models.current() if self.sky_models is not None else None
        info = frame_info(now, self._zone, sky, raws, sky_model=model if self._names else None, site=self.config.site)
        result = self.pipeline.process(images, [r.exposure_s for r in raws], darks, info=info)
        stored = self._store(now, result, raws, info)
        preview = self._encode("preview", lambda: encode_jpeg(result.image, s.jpeg_quality, max_width=s.image_width))
        if preview is not None:
            self.bus.publish(self.topics.allsky_image, preview, qos=1, retain=True)
        if stored is not None:
            # The raw FITS where kept (the camera's own file), else the fused linear one.
            fits_path = stored.fits_path or stored.linear_path
            frame = AllskyFrame(
                frame_id=stored.frame_id,
                night=stored.night,
                exposure_s=longest.exposure_s,
                gain=longest.gain,
                stars=result.stars.count,
                sqm=result.sqm,
                sun_altitude=round(sky.sun_altitude, 2),
                moon_altitude=round(sky.moon_altitude, 2),
                moon_phase=round(sky.moon_illumination, 3),
                url=stored.url,
                fits_url=fits_path.resolve().as_uri() if fits_path else None,
                clean_url=stored.clean_url,
                width=result.width,
                height=result.height,
                mode=setting.mode,
                object_url=self.uploads.object_url(stored.image_path) if self.uploads is not None else None,
            )
            self.bus.publish(self.topics.allsky_frames, frame, qos=1)
            self.frames_done += 1
            if self.uploads is not None:
                self.uploads.send(stored.image_path)
                if self.config.upload.allsky_fits and fits_path is not None:
                    self.uploads.send(fits_path)
            self.products.frame_stored(frame, result.image)
        self._find_streaks(
            setting.mode, raw=raws[0], image=images[0], result=result, stored=stored, now=now, sky_model=model
        )
        self._update(
            camera="ok",
            camera_error=None,
            mode=setting.mode,
            frame_id=stored.frame_id if stored else self.state.frame_id,
            exposure_s=longest.exposure_s,
            gain=longest.gain,
            stars=result.stars.count,
            sqm=result.sqm,
            dark=all(d is not None for d in darks),
            bad_pixels=bad_pixels,
            url=stored.url if stored else self.state.url,
        )
        return result

    def _find_streaks(
        self,
        mode: str,
        *,
        raw: RawFrame,
        image: np.ndarray,
        result: ProcessedFrame,
        stored: StoredFrame | None,
        now: datetime,
        sky_model: SkyModel | None = None,
    ) -> None:
        """Meteors and satellites new in this night frame (against the last one): crops under the
        night's folder and an :class:`~obsy.messages.AllskyStreak` event each. Day and twilight
        frames, and a frame that was not stored, end the sequence (the next night frame starts one).
        ``sky_model``: the frame's model from the :class:`SkyModelSource` (the finished picture's
        pixels), the lens for alt/az where no ``streaks.sky_model`` is configured."""
        settings = self.settings.streaks
        if not settings.enabled or mode not in STREAK_MODES or stored is None:
            self.streaks.reset()
            return
        detector = self.streaks
        if detector.circle is None or detector.circle.shape != image.shape[:2]:
            detector.circle = self._cpu.to_host(self._circle(image.shape))
        scale = result.width / image.shape[1] if result.width else 1.0
        detector.lens = self._streak_lens(sky_model, image.shape[:2], scale)
        moon = None
        if detector.lens is not None:
            place = astro.moon_altaz(self.config.site, now)
            moon = (float(place.alt), float(place.az))
        try:
            found = detector.process(image, raw.exposure_s, moon_altaz=moon)
        except Exception as exc:  # detection must never cost a frame; said once while it fails
            self.streaks.reset()
            if not self._streaks_failing:
                self.log.exception("streak detection failed", extra={"event": "streaks_failed"})
                self._report(EventKind.STREAKS_FAILED, "error", f"streak detection failed: {type(exc).__name__}: {exc}")
            self._streaks_failing = True
            return
        if self._streaks_failing:
            self._report(EventKind.STREAKS_RECOVERED, "info", "streak detection works again")
            self._streaks_failing = False
        found = sorted(found, key=lambda streak: -streak.snr)[: settings.max_per_frame]
        for number, streak in enumerate(found, start=1):
            crop_url = None
            crop = None
            if not self.disk_critical:  # a crop is optional: left out while the disk is nearly full
                crop = self._encode(
                    "streak crop",
                    lambda streak=streak: crop_png(result.image, streak, margin=settings.crop_margin, scale=scale),
                )
            if crop is not None:
                try:
                    crop_url = self.store.save_crop(stored, number, streak.kind, crop).resolve().as_uri()
                except StorageError as exc:
                    self.log.warning("streak crop not stored: %s", exc, extra={"event": "storage_failed"})
            data = streak.as_data()
            event = AllskyStreak(
                frame_id=stored.frame_id,
                night=stored.night,
                kind=streak.kind,
                start=(round(streak.x0, 1), round(streak.y0, 1)),
                end=(round(streak.x1, 1), round(streak.y1, 1)),
                start_altaz=data.get("start_altaz"),
                end_altaz=data.get("end_altaz"),
                length_px=round(streak.length_px, 1),
                length_deg=data.get("length_deg"),
                snr=round(streak.snr, 1),
                steadiness=round(streak.steadiness, 3),
                fade=round(streak.fade, 3),
                blinks=streak.blinks,
                exposure_s=raw.exposure_s,
                crop_url=crop_url,
            )
            self.bus.publish(self.topics.allsky_streaks, event, qos=1)
            self.streaks_found += 1

    def _streak_lens(self, model: SkyModel | None, shape: tuple[int, ...], scale: float) -> SkyModel | None:
        """The detector's lens in the raw frame's pixels: the configured ``streaks.sky_model`` (given in
        them), else ``model`` (the finished picture's pixels, ``scale`` of them per raw pixel) brought to
        the raw frame; None without a model or when it cannot belong to the frame (said once per model)."""
        if self.streak_lens is not None:
            return self.streak_lens
        if model is None:
            return None
        key = (model, tuple(shape), scale)
        if self._lens_for is not None and self._lens_for[0] == key:
            return self._lens_for[1]
        lens: SkyModel | None = model
        if scale != 1.0:
            lens = replace(
                model,
                zenith_x=(model.zenith_x + 0.5) / scale - 0.5,
                zenith_y=(model.zenith_y + 0.5) / scale - 0.5,
                scale=model.scale / scale,
            )
        if not model_fits_picture(lens, shape[1], shape[0]):
            self.log.warning(
                "the streaks have no alt/az: the sky model (zenith %.0f, %.0f) does not fit the %dx%d frame",
                model.zenith_x,
                model.zenith_y,
                shape[1],
                shape[0],
                extra={"event": "sky_model_mismatch"},
            )
            lens = None
        self._lens_for = (key, lens)
        return lens

    def _store(
        self, now: datetime, result: ProcessedFrame, raws: list[RawFrame], info: FrameInfo
    ) -> StoredFrame | None:
        """Encode and store the frame; None when the picture cannot be encoded or the disk is full (reported)."""
        s = self.settings
        picture = self._encode("picture", lambda: self.pipeline.encode(result, s.jpeg_quality))
        if picture is None:
            return None
        linear = None
        if result.linear is not None and not self.disk_critical:
            header = linear_fits_header(info, raws, self.camera.device, s.pipeline.full_scale)
            linear = self._encode("linear FITS", lambda: encode_fits(result.linear, header))
        clean = None
        if result.clean is not None:  # what clouddetect judges: the picture without the overlay
            clean = self._encode("picture without overlay", lambda: encode_jpeg(result.clean, s.jpeg_quality))
        longest = raws[0]
        try:
            stored = self.store.save(
                astro.night_of(self.config.site, now),
                now,
                picture.data,
                picture.extension,
                fits_bytes=longest.fits if s.keep_fits and longest.fits and not self.disk_critical else None,
                linear_fits=linear,
                clean_jpeg=clean,
            )
        except StorageError as exc:
            self.storage_failures += 1
            if self.state.storage_error is None:
                self._report(EventKind.STORAGE_FAILED, "error", f"{exc}; frames are not stored until there is room")
            self._update(storage_error=str(exc))
            return None
        if self.state.storage_error is not None:
            self._report(EventKind.STORAGE_RECOVERED, "info", f"frames are stored again in {self.store.root}")
            self._update(storage_error=None)
        return stored

    def _encode(self, what: str, encode: Callable[[], T]) -> T | None:
        """Run one encoder; a failure is counted, reported once while it lasts, and gives None (file left out)."""
        try:
            encoded = encode()
        except Exception as exc:
            self.encode_failures += 1
            if what not in self._encode_errors:
                self.log.exception("%s not encoded", what, extra={"event": "encode_failed"})
                self._report(
                    EventKind.ENCODE_FAILED, "error", f"{what} not encoded ({type(exc).__name__}: {exc}); left out"
                )
            self._encode_errors[what] = f"{type(exc).__name__}: {exc}"
            return None
        if self._encode_errors.pop(what, None) is not None:
            self._report(EventKind.ENCODE_RECOVERED, "info", f"{what} encoded again")
        return encoded

    def _repair_bad_pixels(
        self, raws: list[RawFrame], darks: list[np.ndarray | None]
    ) -> tuple[list[np.ndarray], list[np.ndarray | None], int | None]:
        """Raw frames and darks with the bad-pixel map's pixels repaired, and how many it has (None: no map)."""
        images = [r.data for r in raws]
        settings = self.settings.camera.bad_pixels
        if not settings.enabled:
            return images, darks, None
        bad = self.darks.bad_pixel_map(
            binning=raws[0].binning,
            shape=images[0].shape,
            k=settings.threshold_mad,
            step=colour_step(self.settings.pipeline.bayer_pattern),
        )
        if bad is None:
            return images, darks, None
        return [bad.apply(i) for i in images], [None if d is None else bad.apply(d) for d in darks], len(bad)

    # --- master darks on command ---------------------------------------------------------
    def _on_darks_command(self, _topic: str, command: AllskyDarksCommand) -> None:
        with self._lock:
            busy = self._darks_request is not None or self.darks_state.status == "running"
            if not busy:
                self._darks_request = command
        reasons = ["a capture of master darks is already under way"] if busy else []
        answer = CommandAnswer.of(
            "darks", "capture", accepted=not busy, origin=command.origin, request_id=command.request_id, reasons=reasons
        )
        if busy:
            self.log.warning("%s", answer.describe(), extra={"event": EventKind.COMMAND_REJECTED})
        self.bus.publish_event(answer.as_event(self.name))
        if not busy:
            self._wake.set()

    def _capture_darks(self, command: AllskyDarksCommand) -> None:
        """Capture the masters a darks command asks for; a camera failure is re-raised for recovery."""
        cam = self.settings.camera
        exposures = command.exposures or self._last_bracket or [self.auto.exposure_s]
        gain = command.gain
        if gain is None:  # the gain the frames are taken at (within the camera's range)
            gain = self.camera.gain
        if gain is None:
            gain = self.camera.within_limits("CCD_GAIN", "GAIN", self.settings.exposure.night.gain)
        count = command.count or cam.dark_count
        self._update_darks(
            AllskyDarksState(
                status="running",
                exposures=exposures,
                count=count,
                gain=gain,
                temperature_c=self.camera.temperature(),
                total=count * len(exposures),
            )
        )
        origin = command.origin or CommandOrigin()
        self._report(
            EventKind.DARKS_STARTED,
            "info",
            f"{count} darks each of {exposures} s at gain {gain:g} (asked by {origin.describe()})",
            data={"origin": origin.as_data()},
        )

        def one_more() -> None:
            self._update_darks(self.darks_state.model_copy(update={"done": self.darks_state.done + 1}))

        try:
            paths = capture_masters(
                self.camera, self.darks, exposures, count=count, gain=gain, binning=cam.binning, progress=one_more
            )
        except Exception as exc:  # never leave the state at "running": a later command would be refused
            self._update_darks(self.darks_state.model_copy(update={"status": "failed", "error": str(exc)}))
            self._report(EventKind.DARKS_FAILED, "error", f"master darks not captured: {exc}")
            if isinstance(exc, CameraError):
                raise  # the capture loop recovers the camera
            if not isinstance(exc, StorageError | ValueError):
                self.log.exception("capture of master darks failed", extra={"event": "darks_failed"})
            return
        hot = None
        if cam.bad_pixels.enabled:
            found = self.darks.bad_pixel_map(
                binning=cam.binning,
                shape=None,
                k=cam.bad_pixels.threshold_mad,
                step=colour_step(self.settings.pipeline.bayer_pattern),
            )
            hot = len(found) if found is not None else None
        update = {"status": "done", "masters": [p.name for p in paths], "hot_pixels": hot}
        self._update_darks(self.darks_state.model_copy(update=update))
        self._report(EventKind.DARKS_DONE, "info", f"master darks {', '.join(p.name for p in paths)}; {hot} hot pixels")

    def _bracket(self, exposure_s: float, mode: str) -> list[RawFrame]:
        """Longest exposure first, then shorter ones while the last still clips (up to ``bracket``)."""
        cam, full_scale = self.settings.camera, self.settings.pipeline.full_scale
        frames = [self.camera.expose(exposure_s)]
        while len(frames) < cam.bracket and not self._stopping.is_set():
            last = frames[-1].data
            clipped = float(np.mean(last[::4, ::4] >= cam.clip_level * full_scale))
            if clipped < 1e-4:
                break
            frames.append(self.camera.expose(frames[-1].exposure_s / cam.bracket_step))
        self.log.debug("bracket of %d in %s mode", len(frames), mode)
        return frames

    def _dark_for(self, raw: RawFrame) -> np.ndarray | None:
        return self.darks.dark_for(
            raw.exposure_s,
            gain=raw.gain or 0.0,
            binning=raw.binning,
            temperature_c=raw.temperature_c,
            shape=raw.data.shape,
        )

    def _circle(self, shape: tuple[int, ...]) -> np.ndarray:
        p = self.settings.pipeline
        return tone.circle_mask(self._cpu, shape[0], shape[1], p.circle_center, p.circle_radius)

    # --- publishing -------------------------------------------------------------------
    def _update(self, **changes: Any) -> None:
        with self._lock:
            self.state = self.state.model_copy(update={**changes, "timestamp": self.clock()})
        self._publish_state()

    def _publish_state(self) -> None:
        self.bus.publish(self.topics.allsky_state, self.state, qos=1, retain=True)

    def _update_darks(self, state: AllskyDarksState) -> None:
        with self._lock:
            self.darks_state = state.model_copy(update={"timestamp": self.clock()})
        self.bus.publish(self.topics.allsky_darks_state, self.darks_state, qos=1, retain=True)

    def _report(self, kind: EventKind, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.log.warning("%s: %s", kind, message, extra={"event": kind})
        self.bus.publish_event(Event(service=self.name, kind=kind, level=level, message=message, data=data or {}))

    def ha_entities(self) -> list[Entity]:
        return ha.entities(self.topics)


def main(argv: list[str] | None = None) -> int:
    """The console script's entry, which lives in :mod:`obsy_allsky.main` (it starts without this module)."""
    from obsy_allsky.main import main as console_main

    return console_main(argv)
