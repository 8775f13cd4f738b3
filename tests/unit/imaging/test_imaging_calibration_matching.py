"""Matching rules, one by one, with the reasons given for every choice and every refusal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from obsy_imaging.calibration import FrameKind, MasterInfo, MatchRules, group_frames, match_masters
from tests.support.calibration_frames import CAMERA, frame_info

NIGHT = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
LIGHT = frame_info(FrameKind.LIGHT, exposure=300.0, time=NIGHT, filter="Ha", shape=(2000, 3000))


def master(kind, master_id, *, exposure=0.0, days=-1.0, **changes) -> MasterInfo:
    base = frame_info(kind, exposure=exposure, time=NIGHT + timedelta(days=days), shape=(2000, 3000))
    fields = {**base.__dict__, "master_id": master_id, "frame_count": 20, **changes}
    return MasterInfo(**fields)


BIAS = master(FrameKind.BIAS, "B1")
DARK = master(FrameKind.DARK, "D300", exposure=300.0)
FLAT = master(FrameKind.FLAT, "F-Ha", exposure=2.0, filter="Ha", days=0.3)


def test_a_complete_match_and_its_explanation():
    plan = match_masters(LIGHT, [BIAS, DARK, FLAT])
    assert (plan.bias.master, plan.dark.master, plan.flat.master) == (BIAS, DARK, FLAT)
    assert plan.ready and plan.dark.scale == 1.0 and not plan.uses_bias
    text = "\n".join(plan.explanation())
    assert "D300" in text and "exposure 300 s matches the light's 300 s" in text
    assert f"{CAMERA}, bin 1×1, gain 120, offset 30, mode High Gain, 0.0 °C from the light" in text
    assert "filter Ha, taken 7.2 h from the light" in text
    assert "not applied: the dark contains the bias" in text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"camera": "QHY600M"}, "camera QHY600M where the light has ZWO CCD ASI294MM Pro"),
        ({"binning": (2, 2)}, "binning 2×2 where the light has 1×1"),
        ({"gain": 100}, "gain 100 where the light has 120"),
        ({"offset": 10}, "offset 10 where the light has 30"),
        ({"readout_mode": "Low Noise"}, "readout mode Low Noise where the light has High Gain"),
        ({"shape": (1000, 1500)}, "size 1000×1500 where the light has 2000×3000"),
        ({"temperature": -7.5}, "temperature -7.5 °C, more than 2 °C from the light's -10.0 °C"),
        ({"temperature": None}, "temperature unknown where the light has -10.0 °C"),
        ({"gain": None}, "gain unknown where the light has 120"),
    ],
)
def test_each_setup_rule_refuses_with_its_reason(change, reason):
    plan = match_masters(LIGHT, [BIAS, replace(DARK, **change), FLAT])
    assert not plan.ready
    assert plan.dark.reason == f"no match among 1 master dark: {reason}"
    assert plan.missing == [f"dark: {plan.dark.reason}"]


def test_temperature_within_the_tolerance_matches_and_the_tolerance_is_a_setting():
    warm = replace(DARK, temperature=-8.2)
    assert match_masters(LIGHT, [warm, FLAT]).dark.master == warm
    assert not match_masters(LIGHT, [warm, FLAT], MatchRules(temperature_tolerance=1.0)).dark.found


def test_unknown_matches_unknown():
    light = replace(LIGHT, gain=None, temperature=None)
    dark = replace(DARK, gain=None, temperature=None)
    assert match_masters(light, [dark, replace(FLAT, gain=None, temperature=None)]).ready


def test_dark_exposure_within_one_percent():
    close = replace(DARK, master_id="D302", exposure=302.9)
    too_far = replace(DARK, master_id="D304", exposure=304.0)
    assert match_masters(LIGHT, [close, FLAT]).dark.master == close
    plan = match_masters(LIGHT, [too_far, FLAT])
    assert "would need scaling, and no master bias matches" in plan.dark.reason


def test_a_longer_dark_is_scaled_down_when_a_bias_matches():
    d600 = replace(DARK, master_id="D600", exposure=600.0)
    d900 = replace(DARK, master_id="D900", exposure=900.0)
    plan = match_masters(LIGHT, [BIAS, d900, d600, FLAT])
    assert plan.dark.master == d600 and plan.dark.scale == pytest.approx(0.5)  # the shortest longer dark
    assert plan.uses_bias and plan.ready
    assert "scaled by 0.5 from 600 s after taking off bias B1" in plan.dark.reason


def test_a_shorter_dark_is_never_scaled_up_and_no_bias_means_no_scaling():
    d60 = replace(DARK, master_id="D60", exposure=60.0)
    d600 = replace(DARK, master_id="D600", exposure=600.0)
    plan = match_masters(LIGHT, [BIAS, d60, FLAT])
    assert plan.dark.reason == (
        "no match among 1 master dark: exposure 60 s, shorter than the light's (darks are only scaled down)"
    )
    plan = match_masters(LIGHT, [d60, d600, FLAT])
    assert not plan.dark.found
    assert "exposure 600 s would need scaling, and no master bias matches" in plan.dark.reason
    assert "exposure 60 s, shorter" in plan.dark.reason


def test_an_exact_dark_beats_a_newer_scalable_one_and_the_newest_exact_wins():
    old = replace(DARK, master_id="D-old", time=NIGHT - timedelta(days=30))
    new = replace(DARK, master_id="D-new", time=NIGHT - timedelta(days=2))
    longer = replace(DARK, master_id="D600", exposure=600.0, time=NIGHT)
    plan = match_masters(LIGHT, [BIAS, old, longer, new, FLAT])
    assert plan.dark.master == new and "best of 3 matching" in plan.dark.reason
    newest_bias = replace(BIAS, master_id="B2", time=NIGHT - timedelta(hours=2))
    assert match_masters(LIGHT, [BIAS, newest_bias, DARK, FLAT]).bias.master == newest_bias


def test_equal_times_are_broken_by_build_time_then_id():
    a = replace(DARK, master_id="Da", built=NIGHT)
    b = replace(DARK, master_id="Db", built=NIGHT + timedelta(minutes=1))
    assert match_masters(LIGHT, [b, a, FLAT]).dark.master == b
    c = replace(DARK, master_id="Dc", built=NIGHT + timedelta(minutes=1))
    assert match_masters(LIGHT, [c, b, a, FLAT]).dark.master == c
    assert match_masters(LIGHT, [a, b, c, FLAT]).dark.master == c


def test_flats_by_filter_and_train_nearest_in_time_within_the_age_limit():
    dusk = replace(FLAT, master_id="F-dusk", time=NIGHT - timedelta(hours=5))
    dawn = replace(FLAT, master_id="F-dawn", time=NIGHT + timedelta(hours=8))
    other_filter = replace(FLAT, master_id="F-OIII", filter="OIII", time=NIGHT)
    assert match_masters(LIGHT, [DARK, dusk, dawn, other_filter]).flat.master == dusk
    assert match_masters(LIGHT, [DARK, dawn]).flat.master == dawn  # dawn flats serve the night before
    old = replace(FLAT, master_id="F-old", time=NIGHT - timedelta(days=10))
    plan = match_masters(LIGHT, [DARK, old, other_filter])
    assert plan.flat.reason == (
        "no match among 2 master flats: filter OIII where the light has Ha; "
        "taken 10.0 days from the light (limit 7.0 days)"
    )
    assert match_masters(LIGHT, [DARK, old], MatchRules(flat_max_age=timedelta(days=14))).flat.master == old


def test_flats_match_by_optical_train_when_both_have_one():
    light = replace(LIGHT, optical_train="RedCat 51 250 mm")
    redcat = replace(FLAT, master_id="F-redcat", optical_train="RedCat 51 250 mm")
    newt = replace(FLAT, master_id="F-newt", optical_train="Newton 200 800 mm", time=LIGHT.time)  # nearer in time
    plan = match_masters(light, [DARK, redcat, newt])
    assert plan.flat.master == redcat and "optical train RedCat 51 250 mm" in plan.flat.reason
    plan = match_masters(light, [DARK, newt])
    assert plan.flat.reason == (
        "no match among 1 master flat: optical train Newton 200 800 mm where the light has RedCat 51 250 mm"
    )
    # A light or a flat without a train (a header without telescope): the filter alone decides.
    assert match_masters(LIGHT, [DARK, newt]).flat.master == newt
    assert match_masters(light, [DARK, FLAT]).flat.master == FLAT


def test_pins_override_the_choice_but_not_the_rules():
    old = replace(DARK, master_id="D-old", time=NIGHT - timedelta(days=30))
    plan = match_masters(LIGHT, [DARK, old, FLAT], pins={"dark": "D-old"})
    assert plan.dark.master == old and "pinned by the user" in plan.dark.reason
    cold = replace(DARK, master_id="D-cold", temperature=-20.0)
    plan = match_masters(LIGHT, [DARK, cold, FLAT], pins={FrameKind.DARK: "D-cold"})
    assert not plan.dark.found  # never silently replaced by another dark
    assert plan.dark.reason.startswith("no match: the pinned dark D-cold is refused: temperature -20.0 °C")
    plan = match_masters(LIGHT, [DARK, FLAT], pins={"flat": "F-gone"})
    assert plan.flat.reason == "no match: the pinned flat 'F-gone' is not in the library"
    far = replace(FLAT, master_id="F-far", time=NIGHT - timedelta(days=40))
    assert match_masters(LIGHT, [DARK, far], pins={"flat": "F-far"}).flat.master == far  # a pin lifts the age limit


def test_an_empty_library_says_so_and_optional_masters_do_not_block():
    plan = match_masters(LIGHT, [])
    assert plan.missing == [
        "dark: no match: the library has no master dark",
        "flat: no match: the library has no master flat",
    ]
    relaxed = match_masters(LIGHT, [BIAS], MatchRules(require_dark=False, require_flat=False))
    assert relaxed.ready and relaxed.uses_bias


def test_bias_and_dark_age_limit_when_set():
    rules = MatchRules(master_max_age=timedelta(days=60))
    old = replace(DARK, master_id="D-ancient", time=NIGHT - timedelta(days=200))
    assert "taken 200.0 days from the light (limit 60.0 days)" in match_masters(LIGHT, [old, FLAT], rules).dark.reason


def test_raw_frames_are_grouped_into_masters_to_build():
    start = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)

    def raw(kind, i, **changes):
        return replace(
            frame_info(kind, exposure=changes.pop("exposure", 60.0), time=start + timedelta(minutes=i)), **changes
        )

    frames = (
        [raw(FrameKind.DARK, i) for i in range(6)]
        + [raw(FrameKind.DARK, 10 + i, exposure=120.0) for i in range(3)]
        + [raw(FrameKind.DARK, 20 + i, temperature=-5.0) for i in range(5)]
        + [raw(FrameKind.FLAT, 30 + i, exposure=1.0, filter="L") for i in range(5)]
        + [raw(FrameKind.FLAT, 40 + i, exposure=1.2, filter="R") for i in range(5)]
        + [raw(FrameKind.DARK, 60 * 24 + i) for i in range(5)]  # the next day: another session
        + [raw(FrameKind.LIGHT, 50 + i) for i in range(5)]  # lights are not calibration frames
    )
    groups = group_frames(frames)
    summary = [(g.kind.value, len(g.frames), g.ready) for g in groups]
    assert summary == [
        ("dark", 6, True),
        ("dark", 3, False),
        ("dark", 5, True),
        ("flat", 5, True),
        ("flat", 5, True),
        ("dark", 5, True),
    ]
    assert groups[2].first.temperature == -5.0 and groups[4].first.filter == "R"
    assert group_frames(list(reversed(frames))) == groups  # deterministic


def test_frame_descriptions_refuse_naive_times_and_negative_exposures():
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(LIGHT, time=datetime(2026, 12, 1, 23, 0))
    with pytest.raises(ValueError, match="negative exposure"):
        replace(LIGHT, exposure=-1.0)


def test_a_pinned_master_wins_for_its_group_only():
    newer = replace(DARK, master_id="D-new", built=NIGHT, time=NIGHT)
    pinned = replace(DARK, master_id="D-pinned", built=NIGHT - timedelta(days=20), pinned=True)
    assert match_masters(LIGHT, [newer, replace(pinned, pinned=False)]).dark.master == newer  # newest wins...
    plan = match_masters(LIGHT, [newer, pinned])
    assert plan.dark.master == pinned and "pinned by the user for its group" in plan.dark.reason  # ...unless pinned
    # Its group: a light of another exposure (it would be scaled) or another gain is not pinned to it.
    short = replace(LIGHT, exposure=120.0)
    long_new = replace(newer, master_id="D-long", exposure=600.0)
    plan = match_masters(short, [BIAS, long_new, replace(pinned, exposure=600.0)])
    assert plan.dark.master == long_new and "pinned" not in plan.dark.reason
    other_gain = replace(pinned, gain=200)
    assert match_masters(LIGHT, [newer, other_gain]).dark.master == newer
    # A pinned flat: its filter and train, any age (the age limit is the user's to lift).
    old_flat = replace(FLAT, master_id="F-old", time=NIGHT - timedelta(days=30), pinned=True)
    plan = match_masters(LIGHT, [DARK, FLAT, old_flat])
    assert plan.flat.master == old_flat and "pinned" in plan.flat.reason
    assert match_masters(replace(LIGHT, filter="OIII"), [DARK, old_flat]).flat.reason.startswith("no match")
    # Two pinned that fit: the usual choice among them (the nearer flat).
    assert match_masters(LIGHT, [DARK, old_flat, replace(FLAT, pinned=True)]).flat.master.master_id == "F-Ha"
