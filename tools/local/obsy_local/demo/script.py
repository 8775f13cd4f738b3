"""What the demo tells its user: where to look, what to do, what should happen."""

from __future__ import annotations

from obsy_local.demo.setup import DemoPlan


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
        f"{config.allsky.camera.interval_s:g} s; the Services table shows all six services online.",
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
        "",
        "Press Ctrl-C to stop everything the demo started.",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)
