"""An INDI camera: settings, one exposure at a time, and recovery when it stops answering.

Only INDI's standard CCD properties are used (CCD_EXPOSURE, CCD_GAIN, CCD_BINNING,
CCD_TEMPERATURE, CCD_COOLER, CCD_ABORT_EXPOSURE and the BLOB CCD1), so any INDI camera
driver works; optional ones (gain, cooling) are used only where the driver has them.

Every number is kept within the range the driver declares for it (a driver answers a value
outside it with Alert, so the exposure would fail every time): exposure, gain, binning and
cooler set point are clamped here, and :meth:`IndiCamera.out_of_range` tells the service which
configured values were, so it can say so once.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import numpy as np

from obsy.indi import IndiClient, IndiError, IndiTimeout
from obsy_allsky.capture.fits import FitsError, decode_fits

log = logging.getLogger("obsy.allsky.camera")


class CameraError(RuntimeError):
    """The camera failed; the message names the device and what went wrong."""


class CameraTimeoutError(CameraError):
    """The camera did not deliver an image in time (it stopped answering)."""


class CorruptFrameError(CameraError):
    """An image arrived but cannot be decoded: the frame is lost, the camera still answers."""


@dataclass(frozen=True)
class RawFrame:
    data: np.ndarray
    exposure_s: float
    gain: float | None
    binning: int
    temperature_c: float | None
    received_at: float
    header: dict = field(default_factory=dict)
    fits: bytes = b""  # the FITS file as the camera sent it (kept when configured)


class IndiCamera:
    """One INDI camera on an :class:`IndiClient`. Not thread-safe: one exposure at a time."""

    def __init__(self, client: IndiClient, device: str, *, readout_margin_s: float = 30.0) -> None:
        self.client = client
        self.device = device
        self.readout_margin_s = readout_margin_s
        self.failures = 0
        self.recoveries = 0
        self.corrupt_frames = 0
        self.last_error: str | None = None
        self._gain: float | None = None
        self._binning = 1

    # --- set-up ------------------------------------------------------------------
    def prepare(self, timeout: float = 20.0) -> None:
        """Connect to indiserver and the device, wait for its exposure and image properties, ask for its images."""
        try:
            if not self.client.connected:
                self.client.connect(timeout=timeout)
            self.client.connect_device(self.device, timeout=timeout)
            self.client.wait_property(self.device, "CCD_EXPOSURE", timeout=timeout)
            self.client.wait_property(self.device, "CCD1", timeout=timeout)
            self.client.enable_blobs(self.device, "CCD1")
        except IndiError as exc:
            raise CameraError(f"camera {self.device!r} is not ready: {exc}") from exc
        # Light frames, even when a capture of darks was cut short before the camera was lost.
        self.set_frame_type("LIGHT")

    def set_frame_type(self, kind: str) -> None:
        """``LIGHT`` or ``DARK`` (the shutter stays shut) where the driver has CCD_FRAME_TYPE."""
        if self.has("CCD_FRAME_TYPE"):
            self._wrap(lambda: self.client.set_switch(self.device, "CCD_FRAME_TYPE", f"FRAME_{kind}"))

    def has(self, prop: str) -> bool:
        return prop in self.client.properties(self.device)

    @property
    def gain(self) -> float | None:
        """The gain last set (within the camera's range); None before one was set."""
        return self._gain

    @property
    def binning(self) -> int:
        return self._binning

    def limits(self, prop: str, element: str) -> tuple[float, float] | None:
        """The (min, max) the driver declares for one number; None where it has none (or no such property)."""
        if not self.has(prop):
            return None
        try:
            return self.client.number_limits(self.device, prop, element)
        except IndiError:
            return None

    def within_limits(self, prop: str, element: str, value: float) -> float:
        """``value`` clamped into the range the driver declares for it (unchanged without one)."""
        span = self.limits(prop, element)
        return value if span is None else min(max(value, span[0]), span[1])

    def out_of_range(self, prop: str, element: str, value: float) -> str | None:
        """Why ``value`` cannot be set as it is (outside the range the driver declares); None if it can."""
        span = self.limits(prop, element)
        if span is None or span[0] <= value <= span[1]:
            return None
        return f"{value:g} is outside camera {self.device!r}'s {prop}.{element} range {span[0]:g}..{span[1]:g}"

    def set_gain(self, gain: float) -> None:
        if not self.has("CCD_GAIN"):
            return
        gain = self.within_limits("CCD_GAIN", "GAIN", gain)
        self._settle("CCD_GAIN", {"GAIN": gain})
        self._gain = gain

    def set_binning(self, binning: int) -> None:
        binning = round(self.within_limits("CCD_BINNING", "HOR_BIN", binning))
        self._settle("CCD_BINNING", {"HOR_BIN": binning, "VER_BIN": binning})
        self._binning = binning

    def set_cooling(self, target_c: float | None) -> None:
        """Cool to ``target_c`` (or switch the cooler off with None) where the camera has a cooler."""
        if not self.has("CCD_TEMPERATURE"):
            return
        if target_c is None:
            if self.has("CCD_COOLER"):
                self._wrap(lambda: self.client.set_switch(self.device, "CCD_COOLER", "COOLER_OFF", wait=False))
            return
        target_c = self.within_limits("CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE", target_c)
        self._wrap(
            lambda: self.client.set_number(
                self.device, "CCD_TEMPERATURE", {"CCD_TEMPERATURE_VALUE": target_c}, wait=False
            )
        )

    def temperature(self) -> float | None:
        if not self.has("CCD_TEMPERATURE"):
            return None
        return self.client.get_number(self.device, "CCD_TEMPERATURE").get("CCD_TEMPERATURE_VALUE")

    # --- exposing -------------------------------------------------------------------
    def expose(self, exposure_s: float) -> RawFrame:
        """Take one exposure and return its image; raises a :class:`CameraError` subclass on failure.

        The image must arrive within the exposure time plus ``readout_margin_s``; otherwise the
        exposure is aborted (where the camera still listens) and :class:`CameraTimeoutError` raised.
        """
        exposure_s = self.clamp_exposure(exposure_s)
        self.client.clear_blobs()
        self._wrap(
            lambda: self.client.set_number(self.device, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": exposure_s}, wait=False)
        )
        try:
            blob = self.client.wait_blob(self.device, timeout=exposure_s + self.readout_margin_s, prop="CCD1")
        except IndiTimeout as exc:
            self._abort()
            message = f"no image {exposure_s + self.readout_margin_s:.0f} s after a {exposure_s:g} s exposure"
            self._failed(message)
            raise CameraTimeoutError(f"camera {self.device!r}: {message} (it stopped answering)") from exc
        except IndiError as exc:  # the server went away mid-exposure
            self._failed(str(exc))
            raise CameraError(f"camera {self.device!r} lost during the exposure: {exc}") from exc
        try:
            image = decode_fits(blob.data, source=f"{self.device} image")
        except FitsError as exc:
            # The camera answered: this image is lost, the camera is not (no reconnect for it).
            self.corrupt_frames += 1
            log.warning("camera %s: %s", self.device, exc, extra={"event": "frame_corrupt"})
            raise CorruptFrameError(str(exc)) from exc
        self.last_error = None
        return RawFrame(
            data=image.data,
            exposure_s=image.number("EXPTIME") or exposure_s,
            gain=self._gain if self._gain is not None else image.number("GAIN"),
            binning=self._binning,
            temperature_c=image.number("CCD-TEMP"),
            received_at=blob.received_at,
            header=image.header,
            fits=blob.data,
        )

    def clamp_exposure(self, exposure_s: float) -> float:
        """The exposure within the camera's own limits (a driver refuses others and never sends an image)."""
        return self.within_limits("CCD_EXPOSURE", "CCD_EXPOSURE_VALUE", exposure_s)

    def recover(self, timeout: float = 20.0) -> bool:
        """After a failure: reconnect the device and restore its settings. True when it answers again."""
        log.warning("reconnecting camera %s", self.device, extra={"event": "camera_reconnect"})
        try:
            if self.client.connected and self.device in self.client.devices():
                # A driver that hangs may not answer; connecting again is what matters.
                with contextlib.suppress(IndiError):
                    self.client.disconnect_device(self.device, timeout=5)
            self.client.wait_device(self.device, timeout=timeout)
            self.prepare(timeout)
            self.set_binning(self._binning)
            if self._gain is not None:
                self.set_gain(self._gain)
        except (IndiError, CameraError) as exc:
            self.last_error = f"reconnect failed: {exc}"
            log.warning("camera %s did not come back: %s", self.device, exc, extra={"event": "camera_lost"})
            return False
        self.recoveries += 1
        log.info("camera %s answers again", self.device, extra={"event": "camera_recovered"})
        return True

    # --- internals --------------------------------------------------------------------
    def _settle(self, prop: str, values: dict[str, float]) -> None:
        self._wrap(lambda: self.client.set_number(self.device, prop, values, timeout=10))

    def _wrap(self, action) -> None:
        try:
            action()
        except IndiError as exc:
            self._failed(str(exc))
            raise CameraError(f"camera {self.device!r}: {exc}") from exc

    def _abort(self) -> None:
        # It may not answer this either; recover() reconnects it then.
        with contextlib.suppress(IndiError):
            self.client.set_switch(self.device, "CCD_ABORT_EXPOSURE", "ABORT", wait=False)

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        log.warning("camera %s: %s", self.device, message, extra={"event": "camera_failed"})
