"""Filter names mapped onto the wheel at planning time; a filter the wheel lacks excludes its target with the reason."""

from __future__ import annotations

from datetime import date

import pytest

from obsy.config import SchedulerConfig, SiteConfig
from obsy.messages import ExposurePlan, Target
from obsy_scheduler.filters import FilterNames, UnknownFilterError
from obsy_scheduler.planner import Planner

VIENNA = SiteConfig(name="Vienna", latitude=48.2, longitude=16.4, timezone="Europe/Vienna")
#: The INDI CCD simulator's wheel.
SIMULATOR = FilterNames(
    ("Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR", "Luminance"), "CCD Simulator FILTER_NAME"
)


@pytest.mark.parametrize(
    ("asked", "on_wheel"),
    [
        ("Red", "Red"),  # exact
        ("red", "Red"),  # case
        ("h-alpha", "H_Alpha"),  # punctuation
        ("Ha", "H_Alpha"),  # synonyms
        ("Lum", "Luminance"),
        ("L", "Luminance"),
        ("S2", "SII"),
        ("O3", "OIII"),
        ("B", "Blue"),
    ],
)
def test_names_map_onto_the_wheel(asked, on_wheel):
    assert SIMULATOR.resolve(asked) == on_wheel


def test_aliases_come_first_and_must_name_a_filter_on_the_wheel():
    wheel = FilterNames(("Red", "Narrow 7nm"), "config", {"Ha": "Narrow 7nm", "Lum": "Clear"})
    assert wheel.resolve("Ha") == "Narrow 7nm"
    with pytest.raises(UnknownFilterError, match=r"'Lum' is aliased to 'Clear', which is not on the filter wheel"):
        wheel.resolve("Lum")


def test_an_unknown_or_ambiguous_name_says_what_the_wheel_has():
    with pytest.raises(UnknownFilterError) as unknown:
        SIMULATOR.resolve("Hbeta")
    assert str(unknown.value) == (
        "filter 'Hbeta' is not on the filter wheel (CCD Simulator FILTER_NAME: Red, Green, Blue, H_Alpha, SII, "
        "OIII, LPR, Luminance): use one of those names, or map it in scheduler.ekos.filter_aliases"
    )
    with pytest.raises(UnknownFilterError, match="could be any of L, Lum"):
        FilterNames(("L", "Lum"), "config").resolve("Luminance")


def test_the_planner_maps_filters_and_excludes_a_target_whose_filter_the_wheel_lacks():
    def target(ident, *filters):
        plans = [ExposurePlan(filter=f, exposure_s=300, count=4) for f in filters]
        return Target(id=ident, name=ident, ra_deg=40.0 + len(ident), dec_deg=80.0, exposure_plans=plans)

    targets = [target("narrowband", "Ha", "O3"), target("typo", "Red", "Hbeta"), target("plain", None)]
    plan = Planner(VIENNA, SchedulerConfig()).plan(targets, date(2026, 11, 21), filters=SIMULATOR)
    assert plan.excluded["typo"].startswith("filter 'Hbeta' is not on the filter wheel")
    planned = {(b.target.id, p.filter) for b in plan.blocks for p, _ in b.exposures}
    assert planned == {("narrowband", "H_Alpha"), ("narrowband", "OIII"), ("plain", "Luminance")}
    assert targets[0].exposure_plans[0].filter == "Ha"  # the targets themselves are left as they are


def test_a_default_filter_not_on_the_wheel_excludes_targets_with_unnamed_filters():
    settings = SchedulerConfig.model_validate({"ekos": {"default_filter": "Clear"}})
    target = Target(id="a", name="A", ra_deg=40.0, dec_deg=80.0, exposure_plans=[ExposurePlan(exposure_s=60, count=2)])
    plan = Planner(VIENNA, settings).plan([target], date(2026, 11, 21), filters=SIMULATOR)
    assert plan.blocks == [] and plan.excluded["a"].startswith("filter 'Clear' is not on the filter wheel")
