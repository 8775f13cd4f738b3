"""The allsky section of the configuration (registered in the ``obsy.config_sections`` entry-point group)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from obsy.config.base import Section, ServiceSection
from obsy.config.sections import SkyModelConfig

PRODUCT_KINDS = ("keogram", "startrails", "timelapse", "panorama", "summary")


class AllskyTimelapseConfig(Section):
    """The night's timelapse video, encoded by ffmpeg."""

    fps: float = Field(default=25.0, gt=0, le=120, description="frames per second of the video")
    encoder: Literal["auto", "libx264", "h264_nvenc", "h264_vaapi", "h264_v4l2m2m"] = Field(
        default="auto", description="auto: the first hardware H.264 encoder that works here, else libx264"
    )
    width: int = Field(default=1920, ge=0, le=8192, description="video width in px (height follows); 0 = the frames'")
    quality: int = Field(default=23, ge=0, le=51, description="constant quality (CRF, CQ or QP; lower is better)")
    bitrate_kbps: int = Field(default=8000, ge=100, description="for encoders without constant quality (v4l2m2m)")


class AllskyPanoramaConfig(Section):
    """The 360° panorama: the fisheye (equidistant) unrolled over altitude 0–90° and azimuth 0–360°."""

    width: int = Field(default=2048, ge=64, le=16384, description="px for 360° of azimuth; the height is a quarter")
    center: tuple[float, float] | None = Field(
        default=None, description="zenith, fraction of W, H; empty = pipeline.circle_center"
    )
    radius: float | None = Field(
        default=None, gt=0, le=1.5, description="horizon radius, fraction of min(W, H); empty = pipeline.circle_radius"
    )
    rotation: float = Field(default=0.0, description="degrees added to the azimuth, as in the sky model; 0 = north up")
    mirrored: bool = Field(default=False, description="true when east is to the right of north in the frames")


class AllskyProductsConfig(Section):
    """Night products: what the service builds when a night ends, and how."""

    nightly: list[Literal["keogram", "startrails", "timelapse", "panorama", "summary"]] = Field(
        default_factory=lambda: list(PRODUCT_KINDS), description="built when a night ends; empty = none"
    )
    thumbnail_width: int = Field(default=320, ge=32, le=1024, description="px, for each frame and product")
    startrails_max_brightness: float = Field(
        default=0.35, gt=0, le=1, description="star trails leave out frames brighter than this (mean, 0-1)"
    )
    timelapse: AllskyTimelapseConfig = AllskyTimelapseConfig()
    panorama: AllskyPanoramaConfig = AllskyPanoramaConfig()


class AllskyStreaksConfig(Section):
    """Meteor and satellite detection in night frames (docs/allsky.md, "Meteors and satellites")."""

    enabled: bool = Field(default=True, description="look for streaks in each night frame")
    min_snr: float = Field(default=8.0, ge=3, description="a track's mean excess over its surroundings, in its noise")
    crop_margin: int = Field(default=48, ge=0, le=1000, description="px around the track in the saved crop")
    max_per_frame: int = Field(default=5, ge=1, le=50, description="at most this many events per frame")
    sky_model: SkyModelConfig | None = Field(
        default=None,
        description="the lens (as clouddetect fits it, in raw-frame pixels) for the tracks' alt/az; "
        "empty = the names' sky model (clouddetect's fitted file, else the fixed one)",
    )


class AllskyFusionConfig(Section):
    """Mertens exposure fusion of an HDR bracket (the weights of OpenCV's createMergeMertens)."""

    contrast_weight: float = Field(default=1.0, ge=0)
    saturation_weight: float = Field(default=1.0, ge=0)
    exposure_weight: float = Field(default=0.0, ge=0, description="well-exposedness (OpenCV's default is 0)")
    domain: Literal["bayer", "rgb"] = Field(
        default="bayer", description="bayer: fuse the raw mosaics, debayer once (fast); rgb: OpenCV's way"
    )


class AllskyStarsConfig(Section):
    """Star detection and the sky-brightness (SQM) estimate, on the longest exposure binned 2×2."""

    threshold_sigma: float = Field(default=5.0, gt=0, description="detection threshold in background noise sigmas")
    min_separation_px: int = Field(
        default=10, ge=4, le=64, description="peaks closer than this (full-size px) count once"
    )
    sqm_zero_point: float = Field(default=21.0, description="magnitude of 1 ADU/s/arcsec²; calibrate against an SQM")
    pixel_scale_arcsec: float = Field(default=300.0, gt=0, description="arcseconds per pixel at the zenith")


class AllskyWhiteBalanceStage(Section):
    stage: Literal["white_balance"]
    method: Literal["manual", "gray_world", "stars"] = Field(
        default="gray_world", description="stars: the detected stars average to white (gray world when too few)"
    )
    gains: tuple[float, float, float] = Field(default=(1.0, 1.0, 1.0), description="R, G, B multipliers (manual)")
    min_stars: int = Field(default=20, ge=3, description="stars: fewer measured stars fall back to gray world")


class AllskyStretchStage(Section):
    stage: Literal["stretch"]
    method: Literal["auto", "mtf"] = "auto"
    target_background: float = Field(default=0.2, gt=0, lt=1, description="auto: where the sky median lands")
    shadows_sigma: float = Field(default=2.8, ge=0, description="auto: clip this many MADs below the median")
    shadows: float = Field(default=0.0, ge=0, lt=1, description="mtf: black point")
    midtones: float = Field(default=0.5, gt=0, lt=1, description="mtf: midtones balance")


class AllskyMedianStage(Section):
    stage: Literal["median"]
    size: Literal[3, 5] = 3


class AllskySaturationStage(Section):
    stage: Literal["saturation"]
    factor: float = Field(default=1.3, ge=0, le=4)


class AllskyMaskStage(Section):
    stage: Literal["mask"]


class AllskyDenoiseStage(Section):
    """ACDNR-style noise reduction: brightness and colour separately, edges above the noise kept."""

    stage: Literal["denoise"]
    luminance: float = Field(default=0.5, ge=0, le=1, description="share of the smoothing applied to brightness")
    chrominance: float = Field(default=1.0, ge=0, le=1, description="share of the smoothing applied to colour")
    luminance_radius: int = Field(default=2, ge=1, le=16, description="px")
    chrominance_radius: int = Field(default=4, ge=1, le=32, description="px")
    edge_sigma: float = Field(default=3.0, gt=0, description="detail stronger than this many noise sigmas is kept")


class AllskyDehazeStage(Section):
    """Dark-channel-prior dehaze: removes a veil (sky glow, thin haze) of the veil's own colour."""

    stage: Literal["dehaze"]
    strength: float = Field(default=0.8, ge=0, le=1, description="share of the veil removed")
    patch_px: int = Field(default=15, ge=3, le=101, description="dark-channel window (px at full size)")
    min_transmission: float = Field(default=0.2, gt=0, le=1, description="limit on the amplification")


class AllskyClarityStage(Section):
    """Local contrast: detail on a scale of ``2**levels`` px boosted, most in the midtones."""

    stage: Literal["clarity"]
    amount: float = Field(default=0.4, ge=-1, le=2, description="0 = off, negative softens")
    levels: int = Field(default=5, ge=1, le=8, description="scale of the local contrast: 2**levels px")


class AllskyToneMapStage(Section):
    """A global tone curve on luminance, colour ratios kept (after or instead of the stretch)."""

    stage: Literal["tone_map"]
    method: Literal["asinh", "reinhard", "gamma"] = "reinhard"
    strength: float = Field(default=4.0, gt=0, description="asinh: softening; reinhard: exposure; gamma: 1/gamma")
    white: float = Field(default=1.0, gt=0, description="reinhard: the input that maps to white")


class AllskyOverlayLabel(Section):
    text: str = Field(min_length=1)
    x: float = Field(ge=0, le=1, description="left edge, fraction of the width")
    y: float = Field(ge=0, le=1, description="baseline, fraction of the height")


class AllskySkyNamesConfig(Section):
    """Names on the sky (the overlay's ``sky``): stars, planets, the Moon, constellations, altitude circles
    and the celestial equator, placed through the camera's sky model (see docs/allsky.md)."""

    enabled: bool = Field(default=True, description="off: none of the layers below is drawn")
    stars: bool = Field(default=True, description="proper names of the brightest named stars")
    star_magnitude: float = Field(default=2.0, ge=-2, le=6.5, description="faintest star named")
    max_stars: int = Field(default=40, ge=0, le=500, description="at most this many star names, brightest first")
    planets: bool = Field(default=True, description="the planets above the horizon, marked and named")
    planet_list: list[Literal["mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune"]] = Field(
        default_factory=lambda: ["mercury", "venus", "mars", "jupiter", "saturn"], description="which planets"
    )
    moon: bool = Field(default=True, description="the Moon, marked and named")
    constellation_lines: bool = Field(default=True, description="stick figures of the main constellations")
    constellation_names: bool = Field(default=True, description="constellation names at their figures' centres")
    altitude_circles: list[float] = Field(
        default_factory=lambda: [30.0, 60.0], description="degrees; circles of equal altitude (0 = the horizon)"
    )
    equator: bool = Field(default=True, description="the celestial equator")
    min_altitude: float = Field(default=3.0, ge=0, lt=90, description="degrees; nothing lower is named")
    text_scale: float = Field(default=0.7, gt=0, le=2, description="label height as a share of the overlay's text")
    label_colour: tuple[float, float, float] = Field(default=(1.0, 0.95, 0.75), description="R, G, B in 0..1")
    line_colour: tuple[float, float, float] = Field(default=(0.45, 0.6, 1.0), description="constellation lines")
    grid_colour: tuple[float, float, float] = Field(default=(0.9, 0.6, 0.3), description="circles and equator")
    sky_model: SkyModelConfig | None = Field(
        default=None,
        description="fixed sky model of the finished picture; used when clouddetect has not fitted one "
        "(empty: clouddetect.transmission.sky_model, else no names)",
    )

    @field_validator("altitude_circles")
    @classmethod
    def _altitudes(cls, value: list[float]) -> list[float]:
        for altitude in value:
            if not 0.0 <= altitude < 90.0:
                raise ValueError(f"an altitude circle must be at 0 to 90 degrees (not {altitude})")
        return value


class AllskyOverlayStage(Section):
    """Text on the image: time, exposure, sun/moon altitude, stars and SQM, N/E/S/W, free labels, names on the sky."""

    stage: Literal["overlay"]
    show: list[Literal["time", "exposure", "sun_moon", "stars"]] = Field(
        default_factory=lambda: ["time", "exposure", "sun_moon", "stars"], description="info lines, top left"
    )
    time_format: str = Field(default="%Y-%m-%d %H:%M:%S %Z", description="strftime format of the frame time")
    cardinals: bool = Field(default=True, description="N, E, S, W at the horizon")
    rotation: float = Field(default=0.0, description="degrees added to the azimuth; 0 = north up (as sky_model)")
    mirrored: bool = Field(default=False, description="true when east is to the right of north")
    labels: list[AllskyOverlayLabel] = Field(default_factory=list)
    text_height: float = Field(default=0.025, gt=0, le=0.2, description="fraction of the image height")
    colour: tuple[float, float, float] = Field(default=(1.0, 1.0, 1.0), description="R, G, B in 0..1")
    sky: AllskySkyNamesConfig = Field(
        default_factory=AllskySkyNamesConfig, description="names on the sky (needs a sky model)"
    )


AllskyFinishStage = Annotated[
    AllskyWhiteBalanceStage
    | AllskyStretchStage
    | AllskyMedianStage
    | AllskySaturationStage
    | AllskyMaskStage
    | AllskyDenoiseStage
    | AllskyDehazeStage
    | AllskyClarityStage
    | AllskyToneMapStage
    | AllskyOverlayStage,
    Field(discriminator="stage"),
]


class AllskyOutputConfig(Section):
    """The stored picture: JPEG (on the GPU where nvImageCodec is installed) or lossless PNG."""

    format: Literal["jpeg", "png"] = Field(default="jpeg", description="JPEG quality: the service's jpeg_quality")
    png_bit_depth: Literal[8, 16] = Field(default=8, description="16: the finished image before 8-bit rounding")
    png_compression: int = Field(default=3, ge=0, le=9, description="zlib level: higher is smaller and slower")
    gpu_jpeg: bool = Field(default=True, description="encode JPEG with nvImageCodec on the GPU backend when installed")
    keep_linear: bool = Field(default=False, description="keep the fused linear RGB (before finishing) for FITS")


def _default_allsky_finish() -> list[Any]:
    return [
        AllskyWhiteBalanceStage(stage="white_balance"),
        AllskyStretchStage(stage="stretch"),
        AllskySaturationStage(stage="saturation"),
        AllskyMaskStage(stage="mask"),
    ]


class AllskyPipelineConfig(Section):
    """How a frame is developed: fixed front (dark, debayer, fusion, stars), then the ``finish`` chain in order."""

    backend: Literal["auto", "numpy", "cupy"] = Field(default="auto", description="auto: CuPy when a GPU is there")
    bayer_pattern: Literal["RGGB", "BGGR", "GRBG", "GBRG", "MONO"] = "RGGB"
    debayer: Literal["bilinear", "malvar"] = Field(default="malvar", description="malvar: Malvar-He-Cutler 5x5")
    full_scale: float = Field(default=65535.0, gt=0, description="ADU of a saturated pixel")
    circle_center: tuple[float, float] = Field(default=(0.5, 0.5), description="image-circle centre, fraction of W, H")
    circle_radius: float = Field(default=0.5, gt=0, le=1.5, description="image-circle radius, fraction of min(W, H)")
    fusion: AllskyFusionConfig = AllskyFusionConfig()
    stars: AllskyStarsConfig = AllskyStarsConfig()
    finish: list[AllskyFinishStage] = Field(default_factory=_default_allsky_finish)
    output: AllskyOutputConfig = AllskyOutputConfig()


class AllskyExposureProfile(Section):
    """Exposure limits, gain and target brightness for day or for night."""

    min_exposure_s: float = Field(gt=0, le=3600)
    max_exposure_s: float = Field(gt=0, le=3600)
    gain: float = Field(default=0.0, ge=0)
    target_brightness: float = Field(default=0.25, gt=0, lt=1, description="median inside the circle, of full scale")

    @model_validator(mode="after")
    def _ordered(self) -> AllskyExposureProfile:
        if self.min_exposure_s > self.max_exposure_s:
            raise ValueError(f"min_exposure_s {self.min_exposure_s} is above max_exposure_s {self.max_exposure_s}")
        return self


class AllskyMoonConfig(Section):
    """Moon mode: while a bright Moon is up, its profile takes the night profile's place."""

    enabled: bool = True
    min_altitude: float = Field(default=5.0, ge=-10, le=90, description="moon altitude (deg) above which it counts")
    min_illumination: float = Field(default=0.4, ge=0, le=1, description="illuminated fraction from which it counts")
    hysteresis_deg: float = Field(
        default=1.0, ge=0, le=10, description="leave moon mode only this far below min_altitude (no flapping)"
    )
    profile: AllskyExposureProfile = AllskyExposureProfile(
        min_exposure_s=0.001, max_exposure_s=5.0, gain=50.0, target_brightness=0.2
    )


class AllskyExposureConfig(Section):
    """Auto-exposure (damped) with day and night profiles blended by sun altitude; a moon mode."""

    auto: bool = True
    fixed_exposure_s: float = Field(default=10.0, gt=0, le=3600, description="when auto is off")
    damping: float = Field(default=0.5, gt=0, le=1, description="share of the way to the ideal exposure per frame")
    max_step: float = Field(default=4.0, gt=1, description="most the exposure changes from one frame to the next")
    night_altitude: float = Field(default=-12.0, description="sun altitude (deg) below which night settings apply")
    day_altitude: float = Field(default=-3.0, description="sun altitude (deg) above which day settings apply")
    night: AllskyExposureProfile = AllskyExposureProfile(
        min_exposure_s=0.001, max_exposure_s=30.0, gain=100.0, target_brightness=0.2
    )
    day: AllskyExposureProfile = AllskyExposureProfile(
        min_exposure_s=0.0001, max_exposure_s=1.0, gain=0.0, target_brightness=0.35
    )
    moon: AllskyMoonConfig = AllskyMoonConfig()

    @model_validator(mode="after")
    def _altitudes(self) -> AllskyExposureConfig:
        if self.night_altitude >= self.day_altitude:
            raise ValueError(f"night_altitude {self.night_altitude} must be below day_altitude {self.day_altitude}")
        return self


class AllskyBadPixelsConfig(Section):
    """The bad-pixel map: hot pixels found in the master darks, replaced before debayering."""

    enabled: bool = True
    threshold_mad: float = Field(
        default=10.0, gt=0, description="a pixel this many robust sigmas (1.4826 MAD) above the dark's median is hot"
    )


class AllskyCameraConfig(Section):
    """The INDI camera the allsky service drives."""

    device: str = Field(default="CCD Simulator", description="INDI device name")
    binning: int = Field(default=1, ge=1, le=4)
    cooling_c: float | None = Field(default=None, description="cooler set point; empty = leave the cooler alone")
    readout_margin_s: float = Field(default=30.0, gt=0, description="image must arrive this long after the exposure")
    interval_s: float = Field(default=60.0, ge=0, description="start of one frame to the start of the next")
    bracket: int = Field(default=1, ge=1, le=5, description="exposures per frame (HDR); 1 = no bracket")
    bracket_step: float = Field(default=4.0, gt=1, description="each next exposure of a bracket is this much shorter")
    clip_level: float = Field(default=0.98, gt=0, le=1, description="of full scale: pixels above it count as clipped")
    dark_tolerance_c: float = Field(
        default=2.0, ge=0, description="a master dark counts within this many degrees of the sensor temperature"
    )
    dark_count: int = Field(default=10, ge=1, le=200, description="frames per master dark (the darks command)")
    bad_pixels: AllskyBadPixelsConfig = AllskyBadPixelsConfig()


class AllskyConfig(ServiceSection):
    camera: AllskyCameraConfig = AllskyCameraConfig()
    exposure: AllskyExposureConfig = AllskyExposureConfig()
    pipeline: AllskyPipelineConfig = AllskyPipelineConfig()
    keep_fits: bool = Field(default=False, description="store each frame's longest raw exposure as FITS too")
    image_width: int = Field(default=640, ge=64, le=4096, description="width of the retained JPEG for Home Assistant")
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    products: AllskyProductsConfig = AllskyProductsConfig()
    streaks: AllskyStreaksConfig = AllskyStreaksConfig()
