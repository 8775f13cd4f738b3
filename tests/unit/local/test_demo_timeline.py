"""The demo's compressed night as the scheduler plans it: the calibration frames before the transit, results
within about 25 min of the start (the simulators run in real time: docs/operations.md, "The demo")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

#: "observing" came 2.0 and 2.2 min after the demo's start here; the plan is made then. Later than this the
#: LRGB target's bias and darks no longer fit before the transit (obsy_local.demo.science.TIMELINE_MIN).
LATEST_OBSERVING_MIN = 5.0


@pytest.mark.slow
@pytest.mark.parametrize("observing_min", [2.0, LATEST_OBSERVING_MIN])
def test_the_demo_night_calibrates_before_the_transit_and_is_over_within_25_min(tmp_path, observing_min):
    """Planned when the MCP starts observing: the LRGB target's bias and darks first, the transit's block next (a
    switch gap later), the variable's own visits after it, the transit's block over within 25 min."""
    from obsy.messages import FrameType, Target
    from obsy.transits.ephemeris import read_archive_csv
    from obsy_local.demo.science import target_bodies
    from obsy_local.demo.setup import prepare_demo
    from obsy_local.demo.targets import CANDIDATES
    from obsy_scheduler.config import SchedulerConfig
    from obsy_scheduler.filters import FilterNames
    from obsy_scheduler.planner import Planner

    start = datetime(2026, 1, 15, 12, 0, 40, tzinfo=UTC)  # between two steps of the plan's 2-min grid
    path = tmp_path / "obsy.yaml"
    path.write_text(f"site: {{latitude: 48, longitude: 16}}\ndata_dir: {tmp_path / 'data'}\ndemo: {{kstars: false}}\n")
    plan = prepare_demo(str(path), now=start)
    assert plan.science is not None, plan.notes
    config = plan.config
    targets = []
    for number, body in enumerate(target_bodies(plan.science)):
        name = body.get("name") or body["catalogue_name"]
        ra, dec = (body["ra_deg"], body["dec_deg"]) if "ra_deg" in body else CANDIDATES[name]
        targets.append(Target.model_validate({**body, "id": str(number), "name": name, "ra_deg": ra, "dec_deg": dec}))
    settings = SchedulerConfig.model_validate(config.scheduler.model_dump())
    ekos = settings.ekos
    night = Planner(config.site, settings).plan(
        targets,
        now=start + timedelta(minutes=observing_min),
        filters=FilterNames(tuple(ekos.filters), "scheduler.ekos.filters", ekos.filter_aliases),
        ephemerides=read_archive_csv(config.scheduler.transits.ephemeris_file),
    )
    blocks = sorted(night.blocks, key=lambda block: block.start)
    minutes = [(b.target.name, round((b.start - start).total_seconds() / 60, 1)) for b in blocks[:4]]
    print(f"observing at {observing_min} min; the first blocks (target, minutes after the start): {minutes}")
    (transit,) = [block for block in blocks if block.transit is not None]
    before = [block for block in blocks if block.end <= transit.start]
    calibration = {plan.frame_type: count for block in before for plan, count in block.exposures}
    assert calibration.get(FrameType.BIAS, 0) >= 5 and calibration.get(FrameType.DARK, 0) >= 5, minutes
    assert transit.end - start <= timedelta(minutes=25), minutes
    visits = [block for block in blocks if block.time_series]
    assert visits and min(visit.start for visit in visits) >= transit.end, minutes
