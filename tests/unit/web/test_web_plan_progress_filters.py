"""The target page's integration against the plan: a plan's filter counts the frames of its synonym on the wheel."""

from __future__ import annotations

from obsy_web.api.imaging_targets import _plan_progress
from obsy_web.db.models import ExposurePlanRecord, ImagingFrameRecord, TargetRecord


def test_a_plans_l_counts_the_wheels_luminance_and_no_line_stays_unplanned():
    target = TargetRecord(name="M 27", ra_deg=299.9, dec_deg=22.72)
    target.exposure_plans = [
        ExposurePlanRecord(filter="L", exposure_s=60.0, count=4, frame_type="Light", acquired=0),
        ExposurePlanRecord(filter="R", exposure_s=60.0, count=4, frame_type="Light", acquired=0),
    ]
    frames = [
        ImagingFrameRecord(filter="Luminance", exposure_s=60.0, accepted=True, night="2026-12-06"),
        ImagingFrameRecord(filter="Luminance", exposure_s=60.0, accepted=False, night="2026-12-06"),
        ImagingFrameRecord(filter="Red", exposure_s=60.0, accepted=True, night="2026-12-06"),
    ]
    rows = {row.filter: row for row in _plan_progress(target, frames, "m27", "2026-12-06")}
    assert set(rows) == {"L", "R"}
    assert (rows["L"].accepted, rows["L"].accepted_s, rows["L"].rejected, rows["L"].night_accepted) == (1, 60.0, 1, 1)
    assert (rows["R"].accepted, rows["R"].accepted_s, rows["R"].rejected) == (1, 60.0, 0)
