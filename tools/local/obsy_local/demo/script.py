"""What the demo tells its user: where to look, what to do, what should happen."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from obsy import astro
from obsy_local.demo.setup import DemoPlan


def _clock(when: datetime, zone: str) -> str:
    """``HH:MM:SS UTC`` and the site's local time, when that differs."""
    local = when.astimezone(ZoneInfo(zone))
    utc = f"{when:%H:%M:%S} UTC"
    return utc if local.utcoffset() == when.utcoffset() else f"{utc} ({local:%H:%M:%S} local)"


def science_lines(plan: DemoPlan, dashboard: str) -> tuple[list[str], list[str]]:
    """What to watch for in the night of science, and the links to its results."""
    if plan.science is None:
        return [], []
    night, site = plan.science.night, plan.config.site
    t, v = night.transit, night.variable
    base = dashboard.rstrip("/")
    date = astro.night_of(site, night.start).isoformat()
    nebula = night.targets[-1]
    filters = ", ".join(p.get("filter", "") for p in nebula["exposure_plans"])
    one_filter = len(nebula["exposure_plans"]) == 1
    watch = [
        "5. Watch the night of science (the Plan page shows tonight's blocks; frames reach the Imaging page):",
        f"   {t.planet} transits its star {t.host}: first contact {_clock(t.ingress_utc, site.timezone)},",
        f"   mid-transit {_clock(t.mid_utc, site.timezone)}, last contact {_clock(t.egress_utc, site.timezone)}, "
        f"{t.depth:.1%} deep;",
        f"   Ekos observes it from {night.config['scheduler']['transits']['baseline_min']:g} min before the first "
        "contact to as long after the last;",
        "   the imaging service fits it a minute after the last frame (the Imaging page's 'Exoplanet transits').",
        f"   {v.name} varies {v.mag:g} ± {v.amplitude:g} mag every {v.period_min:g} min: a visit every "
        f"{night.targets[1]['time_series']['cadence_min']:g} min, each frame measured against its own comparison",
        "   stars into the night's AAVSO report (the transit's frames hold it too).",
        f"   {nebula['name']} takes the bias frames and darks first (the lights are calibrated with them),",
        f"   then {filters} " + ("(one filter: no wheel)." if one_filter else "(the filter wheel simulator)."),
        "   The simulators run in real time: the demo's night is short instead, its results due within about 25 min.",
    ]
    planet, variable = quote(t.planet), quote(v.name)
    results = [
        "Results (after the frames are in; the Imaging page shows them all live):",
        f"   Imaging page:      {base}/imaging",
        f"   Target pages:      {base}/imaging/targets/{planet}   {base}/imaging/targets/{variable}   "
        f"{base}/imaging/targets/{quote(nebula['name'])}",
        f"   AAVSO report:      {base}/api/v1/photometry/{variable}/report?night={date}",
        f"   Light curve (CSV): {base}/api/v1/photometry/{variable}?night={date}&format=csv",
        f"   Transit fit:       {base}/api/v1/transits/{planet}?night={date}   (plot: .../plot?night={date}, "
        f"report: .../report?night={date})",
        f"   The truth to compare with: {night.manifest}",
    ]
    return watch, results


def demo_script(plan: DemoPlan, dashboard: str, weather_command: str, targets: list[str]) -> str:
    config = plan.config
    site = config.site
    delay = f"{config.weather.safe_delay:g} s"
    if plan.sun_altitude is None or plan.sun_altitude <= -18:
        sky = f"astronomical night now, the Sun {-(plan.sun_altitude or -18):.0f}° below the horizon"
    else:
        sky = (
            f"NOT night there now (the Sun at {plan.sun_altitude:.0f}°): the roof stays closed; "
            "demo.site: night picks a site where it is"
        )
    ekos = "Ekos runs tonight's schedule" if config.mcp.ekos.enabled else "(KStars is not installed: no Ekos)"
    watch, results = science_lines(plan, dashboard)
    lines = [
        "",
        "=" * 78,
        "OBSY demo: the whole observatory against the INDI simulators",
        "=" * 78,
        f"Dashboard:  {dashboard}",
        f"Log in as:  {plan.username}   password: {plan.password}   (operator; this demo only)",
        f"Site:       {site.name}, latitude {site.latitude:g}, longitude {site.longitude:g} ({site.timezone}): {sky}",
        f"Targets:    {', '.join(targets) if targets else 'none yet (see the log above)'}",
        f"Config:     {plan.config_path}",
        "",
        "1. Watch the dashboard. Weather turns safe after the safe delay "
        f"({delay}); the scheduler plans the night for the targets;",
        "   clouddetect judges the simulated sky clear after a few allsky frames;",
        "   the MCP confirms the mount parked, opens the roof and starts the night:",
        f"   'Observatory' goes closed -> opening -> observing, {ekos}.",
        "   Allsky frames appear every "
        f"{config.allsky.camera.interval_s:g} s; the Services table shows every service online.",
        "2. Make it rain: press 'Make it rain' on the dashboard, or run",
        f"       {weather_command} rain",
        "   Safety turns unsafe (rain) at once; the MCP stops Ekos, parks the mount and closes",
        "   the roof, in that order. Every step is on the Events page.",
        "3. Stop the rain: press 'Stop the rain', or run",
        f"       {weather_command} clear",
        f"   The roof stays closed for the safe delay ({delay} of good weather), then the night resumes.",
        f"   Also try: {weather_command} wind 60   (too windy; 'clear' calms it again)",
        "4. Make it cloudy: press 'Make it cloudy' (overcast), or run",
        f"       {weather_command} clouds --kind overcast   (or: clouds --cover 60)",
        "   No rain, but after a few allsky frames clouddetect says cloudy and the MCP closes",
        "   as for rain; 'Clear the sky' (clouds --kind clear) reopens it after the safe delay.",
        *watch,
        "",
        *results,
        *([""] if results else []),
        "Press Ctrl-C to stop everything the demo started.",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)
