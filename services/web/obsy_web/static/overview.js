// The overview page: filled from /api/v1/status, then kept current from the live feed.
"use strict";

const view = {
  mcp(state) {
    if (!state) return;
    const node = obsy.text("mcp-state", state.state);
    node.className = state.alarm ? "bad" : (state.roof === "open" ? "good" : "");
    obsy.text("mcp-reason", state.reason);
    obsy.text("mcp-roof", state.roof);
    obsy.text("mcp-mode", state.mode);
    obsy.text("mcp-parked", state.mount_parked === null ? "unknown" : (state.mount_parked ? "yes" : "no"));
    obsy.text("mcp-alarm", state.alarm ? "ALARM" : "none");
  },
  safety(verdict) {
    if (!verdict) return;
    const node = obsy.text("safety-verdict", verdict.safe ? "safe" : "unsafe");
    node.className = verdict.safe ? "good" : "bad";
    document.getElementById("safety-reasons").innerHTML = (verdict.reasons || [])
      .map((r) => `<li><b>${obsy.escape(r.quantity)}</b>: ${obsy.escape(r.message)}</li>`).join("");
  },
  weather(state) {
    if (!state || !state.readings) return;
    const rows = Object.entries(state.readings).map(([name, r]) =>
      `<tr><td>${obsy.escape(name.replaceAll("_", " "))}</td><td>${obsy.escape(r.value)} ${obsy.escape(r.unit)}</td></tr>`);
    document.getElementById("weather-readings").innerHTML = rows.join("") || "<tr><td>no readings</td></tr>";
  },
  clouds(state) {
    if (!state) return;
    obsy.text("cloud-cover", state.cloud_cover === null ? "cover unknown" : `${Math.round(state.cloud_cover)} % cloud`);
    obsy.text("cloud-label", state.clear === null ? `${state.label} (unknown)` : `${state.label}${state.clear ? " · clear" : ""}`);
  },
  allsky(frame) {
    if (!frame) return;
    const img = document.getElementById("allsky-latest");
    img.src = obsy.withSite(`/api/v1/allsky/images/${encodeURIComponent(frame.frame_id)}/file`);
    img.hidden = false;
    obsy.text("allsky-caption", `${obsy.time(frame.timestamp)} · ${frame.exposure_s} s · ${frame.stars ?? "?"} stars`);
  },
  link(site) {
    if (!site) return;
    const node = obsy.text("live-status", site.reachable ? `site ${site.id}: link up` : `site ${site.id}: ${site.status}`);
    node.className = site.reachable ? "good" : "bad";
  },
  plan(plan) {
    if (!plan) return;
    const blocks = (plan.blocks || []).map((b) =>
      `<li>${obsy.escape(b.target_name)}: ${new Date(b.start).toLocaleTimeString()}–${new Date(b.end).toLocaleTimeString()}</li>`);
    document.getElementById("plan-blocks").innerHTML = blocks.join("") || "<li>nothing planned</li>";
  },
  sky(sky) {
    if (!sky) return;
    obsy.text("sun-altitude", `${sky.sun.altitude.toFixed(1)}°`);
    obsy.text("moon-altitude", `${sky.moon.altitude.toFixed(1)}°`);
    obsy.text("moon-phase", `${sky.moon.phase}, ${Math.round(sky.moon.illumination * 100)} % lit`);
    const n = sky.night;
    obsy.text("dark-window", n.astronomical_dusk ? `${new Date(n.astronomical_dusk).toLocaleTimeString()} – ${new Date(n.astronomical_dawn).toLocaleTimeString()}` : "no astronomical darkness");
  },
  services(services) {
    if (!services) return;  // a bridged site's status has its link instead (view.link)
    const rows = Object.entries(services).map(([name, s]) => {
      const age = s.heartbeat_age_s === null ? "–" : `${s.heartbeat_age_s.toFixed(0)} s ago`;
      return `<tr><td>${obsy.escape(name)}</td><td class="${obsy.escape(s.availability)}">${obsy.escape(s.availability)}</td>` +
             `<td class="${obsy.escape(s.status)}">${obsy.escape(s.status)}</td><td>${age}</td></tr>`;
    });
    document.getElementById("services").innerHTML = rows.join("");
  },
};

const byTopic = {
  "mcp/state": view.mcp, "weather/safety": view.safety, "weather/state": view.weather,
  "clouddetect/state": view.clouds, "allsky/frames": view.allsky, "scheduler/plan": view.plan,
};

async function refreshStatus() {
  try {
    const status = await obsy.api("GET", "/api/v1/status");
    const o = status.observatory;
    view.mcp(o.mcp); view.safety(o.safety); view.weather(o.weather); view.clouds(o.clouds);
    view.allsky(o.allsky); view.plan(o.plan); view.sky(o.sky); view.services(status.services);
    view.link(status.site);
  } catch (error) {
    obsy.text("live-status", `web service unreachable: ${error.message}`);
  }
}

async function sendCommand(button) {
  const thing = button.dataset.command;
  const value = thing === "mode" ? document.getElementById("mode-select").value : button.dataset.value;
  const body = thing === "mode" ? {mode: value} : {action: value};
  const result = document.getElementById("command-result");
  result.className = "muted";
  result.textContent = `sending ${thing} ${value}…`;
  document.querySelectorAll("#commands button").forEach((b) => { b.disabled = true; });
  try {
    const reply = await obsy.api("POST", `/api/v1/commands/${thing}`, body);
    const answer = reply.answer || {};
    const said = answer.state ? `${answer.state}${answer.reason ? ": " + answer.reason : ""}` : (answer.message || JSON.stringify(answer));
    result.className = reply.accepted === false ? "bad" : "good";
    result.textContent = `${reply.accepted === false ? "MCP refused" : "MCP answered"}: ${said}`;
  } catch (error) {
    result.className = "bad";
    result.textContent = error.message;
  } finally {
    document.querySelectorAll("#commands button").forEach((b) => { b.disabled = false; });
  }
}

// "Make it rain" / "Stop the rain": the weather service changes the INDI weather simulator;
// "Make it cloudy" / "Clear the sky": it sets the sky simulator's clouds on the allsky camera.
async function simulateWeather(button) {
  const result = document.getElementById("simulation-result");
  const buttons = document.querySelectorAll("#simulation button");
  const request = {action: button.dataset.simulate};
  if (button.dataset.cloudKind) request.cloud_kind = button.dataset.cloudKind;
  result.className = "muted";
  result.textContent = `asking the weather service: ${button.dataset.simulate} ${button.dataset.cloudKind || ""}…`;
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const reply = await obsy.api("POST", "/api/v1/commands/weather/simulate", request);
    result.className = "good";
    result.textContent = reply.message;
  } catch (error) {
    result.className = "bad";
    result.textContent = error.message;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  refreshStatus();
  setInterval(refreshStatus, 30000);  // sky and heartbeat ages; everything else arrives live
  // A bridged site's page follows that site's messages (and its link) on the same feed.
  obsy.live((topic, payload) => {
    const show = topic === "link" ? view.link : byTopic[topic];
    if (show) show(payload);
    else if (topic.endsWith("/availability") || topic.endsWith("/health")) refreshStatus();
  });
  if (obsy.site()) {
    document.getElementById("allsky-link").href = `/allsky?site=${encodeURIComponent(obsy.site())}`;
    return;
  }
  document.querySelectorAll("#commands button[data-command]").forEach((button) =>
    button.addEventListener("click", () => sendCommand(button)));
  document.querySelectorAll("#simulation button[data-simulate]").forEach((button) =>
    button.addEventListener("click", () => simulateWeather(button)));
});
