"""Header normalisation: each capture program's spellings into one FrameHeader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from astropy.io import fits

from obsy_imaging.headers import FrameType, HeaderError, normalise_header, values
from obsy_imaging.headers.normalise import Site

HEADERS = Path(__file__).resolve().parents[2] / "fixtures" / "imaging" / "headers"


def dump(name: str) -> fits.Header:
    return fits.Header.fromstring((HEADERS / f"{name}.txt").read_text(), sep="\n")


def normalised(header: fits.Header, **kwargs):
    return normalise_header(header, comments={"COMMENT": [str(c) for c in header.get("COMMENT", [])]}, **kwargs)


def test_indi_ccd_simulator_light() -> None:
    h = normalised(dump("indi_ccd_simulator_light"))
    assert h.program == "indi"
    assert h.frame_type is FrameType.LIGHT
    assert (h.target, h.filter, h.exposure_s) == ("M 42", "Red", 2.0)
    assert (h.binning_x, h.binning_y, h.gain, h.offset) == (1, 1, 90.0, None)
    assert (h.camera, h.telescope, h.focal_length_mm, h.pixel_size_um) == (
        "CCD Simulator",
        "Telescope Simulator",
        530.0,
        5.2,
    )
    assert h.sensor_temp_c == -10.0
    # OBJCTDEC '-0 25 14.95': south of the equator; RA/DEC in degrees come first and agree.
    assert h.dec_deg == pytest.approx(-(25 / 60 + 14.95 / 3600), abs=1e-4)
    assert h.ra_deg == pytest.approx((5 + 30 / 60 + 51.63 / 3600) * 15, abs=1e-3)
    assert (h.site_latitude, h.site_longitude) == pytest.approx((-33.93, 18.42))
    assert h.date_obs == datetime(2026, 12, 6, 3, 33, 20, 838000, tzinfo=UTC)
    assert h.airmass == pytest.approx(2.675234)
    assert (h.width, h.height) == (1280, 1024)


@pytest.mark.parametrize(
    ("name", "frame_type"),
    [
        ("indi_ccd_simulator_dark", FrameType.DARK),
        ("indi_ccd_simulator_flat", FrameType.FLAT),
        ("indi_ccd_simulator_bias", FrameType.BIAS),
    ],
)
def test_indi_calibration_frames(name: str, frame_type: FrameType) -> None:
    h = normalised(dump(name))
    assert h.frame_type is frame_type
    assert h.ra_deg is None and h.bjd_tdb_mid is None  # INDI writes no pointing for calibration frames


def test_nina_light() -> None:
    h = normalised(dump("nina_light"))
    assert h.program == "nina"
    assert h.frame_type is FrameType.LIGHT
    assert (h.target, h.filter, h.exposure_s, h.gain, h.offset) == ("M 42", "Ha", 300.0, 100.0, 50.0)
    assert h.readout_mode == "High Gain Mode"
    assert (h.sensor_temp_c, h.setpoint_temp_c) == (-9.9, -10.0)
    assert (h.camera, h.telescope, h.focal_length_mm, h.pixel_size_um) == (
        "ZWO ASI6200MM Pro",
        "Esprit 100ED",
        550,
        3.76,
    )
    assert (h.ra_deg, h.dec_deg) == pytest.approx((83.822083, -5.391111))
    assert (h.site_latitude, h.site_longitude, h.site_elevation_m) == pytest.approx((48.137222, 11.575556, 520))
    assert h.airmass == pytest.approx(2.0818293)


def test_sgp_light() -> None:
    h = normalised(dump("sgp_light"))
    assert h.program == "sgp"
    assert h.frame_type is FrameType.LIGHT
    assert (h.target, h.filter) == ("NGC 7000", "L-eXtreme")
    assert h.exposure_s == 180  # EXPOSURE, SGP has no EXPTIME
    assert (h.binning_x, h.binning_y) == (2, 2)
    assert h.pixel_size_um == pytest.approx(4.63)  # XPIXSZ is after binning: 9.26 / 2
    assert (h.gain, h.offset, h.setpoint_temp_c) == (120, 30, -15)
    assert (h.site_latitude, h.site_longitude) == pytest.approx((50.85, 4.35))  # '50 51 0.000', '4 21 0.000'
    assert (h.ra_deg, h.dec_deg) == pytest.approx((314.749583, 44.330556))


def test_maxim_light() -> None:
    h = normalised(dump("maxim_light"))
    assert h.program == "maxim"
    assert h.frame_type is FrameType.LIGHT
    assert (h.target, h.filter, h.exposure_s, h.readout_mode) == ("NGC 5128", "Lum", 600.0, "Normal")
    assert h.gain is None  # MaxIm writes no gain setting here (EGAIN would be e-/ADU, never the gain)
    assert (h.binning_x, h.pixel_size_um) == (2, 9.0)
    # RA and DEC are strings here: hours and signed degrees.
    assert h.ra_deg == pytest.approx((13 + 25 / 60 + 27.6 / 3600) * 15)
    assert h.dec_deg == pytest.approx(-(43 + 1 / 60 + 9 / 3600))
    assert (h.site_latitude, h.site_longitude) == pytest.approx((-31 - 16 / 60 - 24 / 3600, 149 + 3 / 60 + 52 / 3600))
    assert h.site_elevation_m == 1165
    assert h.jd_start == pytest.approx(2458606.0728240740, abs=1e-8)  # the header's own JD, from DATE-OBS


@pytest.mark.parametrize(
    ("spelling", "frame_type"),
    [
        ("Light Frame", FrameType.LIGHT),  # INDI/Ekos, MaxIm
        ("LIGHT", FrameType.LIGHT),  # N.I.N.A., SGP
        ("Light", FrameType.LIGHT),
        ("SNAPSHOT", FrameType.LIGHT),
        ("Dark Frame", FrameType.DARK),
        ("DARK", FrameType.DARK),
        ("Bias Frame", FrameType.BIAS),
        ("BIAS", FrameType.BIAS),
        ("Flat Field", FrameType.FLAT),  # MaxIm
        ("Flat Frame", FrameType.FLAT),  # INDI
        ("FLAT", FrameType.FLAT),
        ("DARKFLAT", FrameType.DARK_FLAT),  # N.I.N.A.
        ("Dark Flat", FrameType.DARK_FLAT),
    ],
)
def test_frame_type_spellings(spelling: str, frame_type: FrameType) -> None:
    header = dump("nina_light")
    header["IMAGETYP"] = spelling
    assert normalised(header).frame_type is frame_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-0 25 14.95", -(25 / 60 + 14.95 / 3600)),
        ("-00:30:00", -0.5),
        ("+33 02 02.625", 33 + 2 / 60 + 2.625 / 3600),
        ("51 3 0.000", 51.05),
        ("-5", -5.0),
        ("-0.5", -0.5),
    ],
)
def test_sexagesimal_keeps_the_sign(text: str, expected: float) -> None:
    assert values.angle_degrees(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["99 99 99", "north", "", "12 61 00"])
def test_unreadable_angles_are_none(text: str) -> None:
    assert values.angle_degrees(text) is None


def test_ra_strings_are_hours_and_numbers_degrees() -> None:
    assert values.right_ascension_degrees("05 35 17") == pytest.approx(83.820833)
    assert values.right_ascension_degrees(83.82) == pytest.approx(83.82)
    assert values.right_ascension_degrees("25 00 00") is None


def test_longitude_in_0_to_360_becomes_east_negative_west() -> None:
    assert values.longitude_east(350.0) == pytest.approx(-10.0)
    assert values.longitude_east("-1 52 00") == pytest.approx(-(1 + 52 / 60))


def test_missing_keys_are_named() -> None:
    header = dump("nina_light")
    del header["IMAGETYP"]
    del header["DATE-OBS"]
    with pytest.raises(HeaderError) as caught:
        normalised(header)
    assert caught.value.missing == ["IMAGETYP/FRAMETYP/FRAME", "DATE-OBS"]
    assert "missing IMAGETYP/FRAMETYP/FRAME, DATE-OBS" in str(caught.value)


def test_an_unknown_frame_type_is_named_with_its_value() -> None:
    header = dump("nina_light")
    header["IMAGETYP"] = "Tricolour"
    with pytest.raises(HeaderError, match="unreadable IMAGETYP='Tricolour'"):
        normalised(header)


def test_exposure_is_required_except_for_bias() -> None:
    header = dump("sgp_light")
    del header["EXPOSURE"]
    with pytest.raises(HeaderError, match="EXPTIME/EXPOSURE"):
        normalised(header)
    header["IMAGETYP"] = "BIAS"
    assert normalised(header).exposure_s is None


def test_mid_exposure_and_bjd_tdb() -> None:
    h = normalised(dump("nina_light"))
    assert h.jd_mid - h.jd_start == pytest.approx(150 / 86400, abs=1e-8)
    # M 42 in mid-January stands opposite the Sun: the light reaches the Earth before the
    # barycentre, so BJD_TDB is later than JD(UTC) by TDB-UTC (69.2 s) plus up to 499 s.
    offset_s = (h.bjd_tdb_mid - h.jd_mid) * 86400
    assert 69.184 + 300 < offset_s < 69.184 + 499.1


def test_old_split_date_and_time() -> None:
    header = dump("maxim_light")
    header["DATE-OBS"] = "2019-05-02"
    assert normalised(header).date_obs == datetime(2019, 5, 2, 13, 44, 52, tzinfo=UTC)


def test_site_from_configuration_and_airmass_computed_when_absent() -> None:
    header = dump("indi_ccd_simulator_light")
    for key in ("SITELAT", "SITELONG", "AIRMASS"):
        del header[key]
    h = normalised(header, site=Site(-33.93, 18.42, 0.0))
    assert (h.site_latitude, h.site_longitude) == (-33.93, 18.42)
    assert "site from the configuration" in h.notes
    assert h.airmass == pytest.approx(2.675234, rel=0.02)  # INDI's own figure for this frame
    assert h.bjd_tdb_mid is not None


@pytest.mark.parametrize(
    ("ra", "dec", "latitude", "longitude", "when"),
    [
        (83.82, -5.39, 48.14, 11.58, "2024-01-14T22:43:37"),
        (201.37, -43.02, -31.27, 149.06, "2019-05-02T13:49:52"),
        (314.75, 44.33, 50.85, 4.35, "2023-08-19T22:00:00"),
        (10.68, 41.27, -33.93, 18.42, "2026-12-06T03:33:21"),
    ],
)
def test_barycentric_correction_agrees_with_astropy(ra, dec, latitude, longitude, when) -> None:
    import astropy.units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time

    from obsy_imaging.headers.barycentre import light_travel_time_s

    where = EarthLocation.from_geodetic(longitude * u.deg, latitude * u.deg, 300 * u.m)
    moment = Time(when, scale="utc", location=where)
    reference = moment.light_travel_time(SkyCoord(ra * u.deg, dec * u.deg), kind="barycentric").to_value(u.s)
    assert light_travel_time_s(moment.tdb, ra, dec, where) == pytest.approx(reference, abs=1e-3)


def test_the_airmass_of_a_night_at_once_is_each_frames_and_nan_near_the_horizon() -> None:
    """The transit reduction takes a night's airmasses in one transform: the same figures as one
    frame at a time, and none where the target is 3° or less above the horizon (then it sets)."""
    import numpy as np
    from astropy.time import Time

    from obsy import astro
    from obsy_imaging.headers.normalise import airmasses, exposure_timing

    site = Site(50.0, 8.0, 100.0)
    starts = [datetime(2026, 10, 15, 18, 0, tzinfo=UTC).replace(hour=h) for h in (18, 21, 23)]
    starts.append(datetime(2026, 10, 16, 11, 0, tzinfo=UTC))  # the field below the horizon
    single = [exposure_timing(s, exposure_s=60.0, ra=350.0, dec=10.0, latitude=50.0, longitude=8.0, elevation=100.0)
              for s in starts]  # fmt: skip
    mids = Time([datetime.fromtimestamp(s.timestamp() + 30.0, UTC) for s in starts], location=astro.location(site))
    night = airmasses(mids, 350.0, 10.0)
    assert [t.airmass for t in single[:3]] == pytest.approx(list(night[:3]), rel=1e-9)
    assert all(1.0 < a < 3.0 for a in night[:3])
    assert single[3].airmass is None and np.isnan(night[3])
