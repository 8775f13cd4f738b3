"""The allsky service: capture from an INDI camera, process, store, publish.

A capture thread runs one frame after another (``camera.interval_s`` apart): choose exposure
and gain (auto-exposure, day/night by sun altitude), expose a bracket of up to
``camera.bracket`` frames (longest first, stopping early when the last one no longer clips),
run the pipeline, store the JPEG under ``<data_dir>/allsky/<night>/``, then publish an
:class:`~obsy.messages.AllskyFrame` event with the file URL on ``allsky/frames``, a small
retained JPEG on ``allsky/image`` (Home Assistant's image entity) and the retained
:class:`~obsy.messages.AllskyState`. A camera that fails is reported (state, event) and
reconnected; a full disk is reported and the next frame tried; neither ends the service.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from obsy import astro
from obsy.homeassistant import Entity
from obsy.indi import IndiClient
from obsy.messages import AllskyFrame, AllskyState, Event
from obsy.runner import Service, run_service
from obsy_allsky.backend import NumpyBackend
from obsy_allsky.capture.camera import CameraError, IndiCamera, RawFrame
from obsy_allsky.capture.darks import DarkLibrary
from obsy_allsky.capture.exposure import AutoExposure, measure_brightness
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.chain import FramePipeline, ProcessedFrame
from obsy_allsky.storage import FrameStore, StorageError, encode_jpeg

#: Seconds to wait before trying a camera again after it failed to come back.
RETRY_S = 5.0


class AllskyService(Service):
    name = "allsky"

    def start(self) -> None:
        s = self.settings
        self.pipeline = FramePipeline(s.pipeline)
        self.store = FrameStore(self.config.data_dir)
        self.darks = DarkLibrary(self.store.root / "darks", tolerance_c=s.camera.dark_tolerance_c)
        self.auto = AutoExposure(s.exposure)
        self.client = IndiClient.from_config(self.config.indi, timeout=10.0, reconnect_interval=1.0)
        self.camera = IndiCamera(self.client, s.camera.device, readout_margin_s=s.camera.readout_margin_s)
        self.state = AllskyState(backend=self.pipeline.backend.name)
        self.frames_done = 0
        self._cpu = NumpyBackend()
        self._last: tuple[float, float] | None = None  # (brightness, exposure) of the last frame
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._publish_state()
        self._thread = threading.Thread(target=self._capture_loop, name="allsky-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        # Disconnecting ends a wait for an image at once; the capture thread then sees the stop.
        self.client.disconnect()
        self._thread.join(timeout=10)

    def health_details(self) -> dict[str, Any]:
        return {
            "camera": self.state.camera,
            "camera_failures": self.camera.failures,
            "camera_recoveries": self.camera.recoveries,
            "frames": self.frames_done,
            "backend": self.pipeline.backend.name,
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
                self.capture_frame()
            except CameraError as exc:
                if self._stopping.is_set():
                    break  # the exposure was cut short by stop()
                ready = self._camera_failed(exc)
                pause = 0.0 if ready else RETRY_S
            except StorageError as exc:
                self._report("storage_failed", "error", str(exc))
                self._update(storage_error=str(exc))
            except Exception as exc:  # a bad frame must not end the capture
                self.log.exception("frame failed", extra={"event": "frame_failed"})
                self._report("frame_failed", "error", f"{type(exc).__name__}: {exc}")
            self._stopping.wait(max(0.0, pause - (time.monotonic() - started)))

    def _prepare_camera(self) -> None:
        cam = self.settings.camera
        self.camera.prepare()
        self.camera.set_binning(cam.binning)
        if cam.cooling_c is not None:
            self.camera.set_cooling(cam.cooling_c)
        self._update(camera="ok", camera_error=None)

    def _camera_failed(self, exc: CameraError) -> bool:
        """Report the failure and reconnect; True when the camera answers again."""
        self._update(camera="failing", camera_error=str(exc), camera_failures=self.camera.failures)
        self._report("camera_failed", "warning", str(exc))
        if self._stopping.is_set():
            return False
        if self.camera.recover():
            self._update(camera="ok", camera_error=None)
            self._report("camera_recovered", "info", f"camera {self.camera.device!r} answers again")
            return True
        self._update(camera="lost", camera_error=self.camera.last_error)
        return False

    def capture_frame(self) -> ProcessedFrame:
        """One frame: expose the bracket, process, store, publish."""
        s = self.settings
        now = datetime.now(UTC)
        sun_altitude = astro.sun_altitude_now(self.config.site)
        brightness, last_exposure = self._last if self._last else (None, None)
        setting = self.auto.next(brightness, last_exposure, sun_altitude)
        self.camera.set_gain(setting.gain)
        raws = self._bracket(setting.exposure_s, setting.mode)
        longest = raws[0]
        mask = self._circle(longest.data.shape)
        self._last = (measure_brightness(longest.data, s.pipeline.full_scale, mask), longest.exposure_s)

        darks = [self._dark_for(r) for r in raws]
        result = self.pipeline.process([r.data for r in raws], [r.exposure_s for r in raws], darks)
        night = astro.night_of(self.config.site, now)
        stored = self.store.save(
            night,
            now,
            encode_jpeg(result.image, s.jpeg_quality),
            longest.fits if s.keep_fits and longest.fits else None,
        )
        moon = astro.moon_altaz(self.config.site, now)
        frame = AllskyFrame(
            frame_id=stored.frame_id,
            night=stored.night,
            exposure_s=longest.exposure_s,
            gain=longest.gain,
            stars=result.stars.count,
            sqm=result.sqm,
            sun_altitude=round(sun_altitude, 2),
            moon_altitude=round(float(moon.alt), 2),
            moon_phase=round(float(astro.moon_illumination(now)), 3),
            url=stored.url,
            fits_url=stored.fits_path.resolve().as_uri() if stored.fits_path else None,
            width=result.width,
            height=result.height,
        )
        self.bus.publish(self.topics.allsky_frames, frame, qos=1)
        preview = encode_jpeg(result.image, s.jpeg_quality, max_width=s.image_width)
        self.bus.publish(self.topics.allsky_image, preview, qos=1, retain=True)
        self.frames_done += 1
        self._update(
            camera="ok",
            camera_error=None,
            mode=setting.mode,
            frame_id=frame.frame_id,
            exposure_s=frame.exposure_s,
            gain=frame.gain,
            stars=frame.stars,
            sqm=frame.sqm,
            dark=all(d is not None for d in darks),
            url=frame.url,
            storage_error=None,
        )
        return result

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
            self.state = self.state.model_copy(update={**changes, "timestamp": datetime.now(UTC)})
        self._publish_state()

    def _publish_state(self) -> None:
        self.bus.publish(self.topics.allsky_state, self.state, qos=1, retain=True)

    def _report(self, kind: str, level: str, message: str) -> None:
        self.log.warning("%s: %s", kind, message, extra={"event": kind})
        self.bus.publish_event(Event(service=self.name, kind=kind, level=level, message=message))

    def ha_entities(self) -> list[Entity]:
        state = self.topics.allsky_state

        def sensor(object_id: str, name: str, field: str, **extra: Any) -> Entity:
            return Entity(
                component="sensor",
                object_id=object_id,
                name=name,
                state_topic=state,
                value_template=f"{{{{ value_json.{field} if value_json.{field} is not none else 'None' }}}}",
                state_class="measurement",
                **extra,
            )

        return [
            Entity(
                component="image",
                object_id="sky",
                name="Sky",
                image_topic=self.topics.allsky_image,
                content_type="image/jpeg",
            ),
            sensor("stars", "Stars", "stars", icon="mdi:star-four-points"),
            sensor("sqm", "Sky brightness", "sqm", unit_of_measurement="mag/arcsec²", icon="mdi:brightness-4"),
            sensor("exposure", "Exposure", "exposure_s", device_class="duration", unit_of_measurement="s"),
            sensor("gain", "Gain", "gain", icon="mdi:tune-vertical"),
        ]


def main(argv: list[str] | None = None) -> int:
    from obsy_allsky.cli import COMMANDS

    return run_service(AllskyService, argv, COMMANDS)
