"""The web's rule for counting accepted lights into exposure plans (TargetStore on SQLite)."""

from __future__ import annotations

import logging

import pytest

from obsy.messages import AcquiredLights, ImagingAcquired, TargetList
from obsy_web.db import make_engine, session_factory
from obsy_web.db.migrate import upgrade
from obsy_web.targets import TargetInput, TargetStore, name_key


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'web.sqlite3'}")
    upgrade(engine)
    published: list[TargetList] = []
    store = TargetStore(session_factory(engine), published.append)
    store.published = published  # type: ignore[attr-defined]
    yield store
    engine.dispose()


def summary(*rows: tuple[str, str | None, float, int]) -> ImagingAcquired:
    return ImagingAcquired(lights=[AcquiredLights(target=t, filter=f, exposure_s=e, accepted=n) for t, f, e, n in rows])


def test_names_are_compared_without_case_or_blanks():
    assert name_key("M 31") == name_key("m31") == name_key(" M31\t") == "m31"
    assert name_key(None) == name_key("") == ""
    assert name_key("NGC 7000") != name_key("NGC 700")


def test_only_matching_light_plans_count_and_a_larger_hand_value_stays(store):
    target = store.create(
        TargetInput(
            name="NGC 7000",
            ra_deg=314.8,
            dec_deg=44.3,
            exposure_plans=[
                {"filter": "Ha", "exposure_s": 600, "count": 10},
                {"filter": None, "exposure_s": 600, "count": 10},
                {"filter": "Ha", "exposure_s": 600, "count": 10, "frame_type": "Dark"},
                {"filter": "OIII", "exposure_s": 600, "count": 10, "acquired": 9},
            ],
        )
    )
    before = len(store.published)
    changed = store.apply_acquired(
        summary(
            ("ngc7000", "ha", 605.9, 4),  # within 1 %
            ("NGC 7000", "Ha", 620, 50),  # 3 % off: another plan's
            ("NGC 7000", None, 600, 2),
            ("NGC 7000", "OIII", 600, 5),  # below the hand value 9
        )
    )
    assert changed == 2
    assert [p.acquired for p in store.get(target.id).exposure_plans] == [4, 2, 0, 9]
    assert len(store.published) == before + 1
    assert [p.acquired for p in store.published[-1].targets[0].exposure_plans] == [4, 2, 0, 9]

    # The same summary again changes nothing and publishes nothing.
    assert store.apply_acquired(summary(("ngc7000", "ha", 605.9, 4))) == 0
    assert len(store.published) == before + 1


def test_calibration_plans_count_their_own_frames(store):
    """Darks by exposure whatever the filter, a bias by type alone, flats by filter and exposure."""
    target = store.create(
        TargetInput(
            name="M 42",
            ra_deg=83.82,
            dec_deg=-5.39,
            exposure_plans=[
                {"filter": "Ha", "exposure_s": 300, "count": 10, "frame_type": "Dark"},
                {"filter": None, "exposure_s": 0.1, "count": 10, "frame_type": "Bias"},
                {"filter": "Ha", "exposure_s": 2, "count": 10, "frame_type": "Flat"},
                {"filter": "Ha", "exposure_s": 300, "count": 10},
            ],
        )
    )
    rows = [
        AcquiredLights(target="M42", filter=None, exposure_s=300, accepted=7, frame_type="Dark"),
        AcquiredLights(target="M42", filter=None, exposure_s=0.0, accepted=5, frame_type="Bias"),
        AcquiredLights(target="M42", filter="Ha", exposure_s=2.0, accepted=3, frame_type="Flat"),
        AcquiredLights(target="M42", filter="OIII", exposure_s=2.0, accepted=4, frame_type="Flat"),
        AcquiredLights(target="M42", filter="Ha", exposure_s=120, accepted=6, frame_type="Dark"),  # another length
    ]
    store.apply_acquired(ImagingAcquired(lights=rows))
    assert [p.acquired for p in store.get(target.id).exposure_plans] == [7, 5, 3, 0]  # no light was counted


def test_a_hand_value_below_the_count_is_raised_when_saved(store):
    data = {"name": "M 31", "ra_deg": 10.68, "dec_deg": 41.27}
    target = store.create(TargetInput(**data, exposure_plans=[{"filter": "L", "exposure_s": 120, "count": 30}]))
    store.apply_acquired(summary(("M31", "L", 120, 6)))
    saved = store.update(
        target.id, TargetInput(**data, exposure_plans=[{"filter": "L", "exposure_s": 120, "count": 30, "acquired": 1}])
    )
    assert saved.exposure_plans[0].acquired == 6


def test_lights_of_an_unknown_target_are_logged_and_not_counted(store, caplog):
    store.create(TargetInput(name="M 31", ra_deg=10.68, dec_deg=41.27))
    with caplog.at_level(logging.INFO, logger="obsy.web.targets"):
        assert store.apply_acquired(summary(("Nowhere Nebula", "Ha", 300, 4))) == 0
    assert "not in the target list" in caplog.text and "Nowhere Nebula" in caplog.text


def test_a_malformed_summary_is_refused_by_its_model():
    with pytest.raises(ValueError, match="exposure_s"):
        ImagingAcquired.model_validate_json('{"lights": [{"target": "M 31", "exposure_s": -1, "accepted": 1}]}')
    with pytest.raises(ValueError, match="frame_type"):
        ImagingAcquired.model_validate_json(
            '{"lights": [{"target": "M 31", "exposure_s": 60, "accepted": 1, "frame_type": "Dusk"}]}'
        )
    with pytest.raises(ValueError, match="target"):
        ImagingAcquired.model_validate_json('{"lights": [{"target": "", "exposure_s": 60, "accepted": 1}]}')


def test_lrgb_plans_count_the_wheels_names_for_their_filters(store):
    """The scheduler takes a plan's "L" through the wheel's "Luminance" (obsy.filters): its frames count into it."""
    target = store.create(
        TargetInput(
            name="M 27",
            ra_deg=299.9,
            dec_deg=22.72,
            exposure_plans=[
                {"filter": "L", "exposure_s": 60, "count": 10},
                {"filter": "R", "exposure_s": 60, "count": 10},
                {"filter": "Ha", "exposure_s": 60, "count": 10},
                {"filter": "B", "exposure_s": 60, "count": 10},
            ],
        )
    )
    store.apply_acquired(
        summary(
            ("M 27", "Luminance", 60, 3), ("M 27", "Red", 60, 2), ("M 27", "H_Alpha", 60, 4), ("M 27", "Green", 60, 5)
        )
    )
    assert [p.acquired for p in store.get(target.id).exposure_plans] == [3, 2, 4, 0]
