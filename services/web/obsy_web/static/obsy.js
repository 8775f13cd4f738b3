// OBSY dashboard helpers: API calls with the CSRF token, the live feed, small DOM helpers.
"use strict";

const obsy = {
  csrf() {
    return document.querySelector('meta[name="csrf-token"]')?.content || "";
  },

  // The bridged site this page shows (?site=<id>, given by the server), or "" for this site.
  site() {
    return document.querySelector('meta[name="obsy-site"]')?.content || "";
  },

  // ``url`` (a page or API path of this service) asking for the shown site: ``site=<id>`` added while a
  // bridged site is shown. API routes that show this site only answer such a request with an error
  // instead of this site's data.
  withSite(url) {
    const site = obsy.site();
    if (!site || !url.startsWith("/")) return url;
    const address = new URL(url, location.origin);
    address.searchParams.set("site", site);
    return address.pathname + address.search;
  },

  // Calls the REST API; resolves to the parsed JSON, throws an Error carrying the API's message.
  // GET calls ask for the shown site (``withSite``); changes are never sent while another site is shown.
  async api(method, url, body) {
    if (method === "GET") url = obsy.withSite(url);
    else if (obsy.site() && url.startsWith("/api/") && !url.startsWith("/api/v1/auth/")) {
      throw new Error(`site ${obsy.site()} is shown: commands here would act on this site`);
    }
    const headers = {"X-CSRF-Token": obsy.csrf()};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const reply = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (reply.status === 204) return null;
    const data = await reply.json().catch(() => ({detail: reply.statusText}));
    if (!reply.ok) {
      const error = new Error(data.detail || reply.statusText);
      error.status = reply.status;
      throw error;
    }
    return data;
  },

  text(id, value) {
    const node = document.getElementById(id);
    if (node) node.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
    return node;
  },

  escape(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  },

  time(iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
  },

  // Subscribes to /api/v1/live; calls handler(topic, payload) for every bus message of the shown site:
  // this site's, or a bridged site's (``site=``: its messages as the central broker receives them through
  // its bridge, topics relative to its prefix as this site's are; "link" when its bridge connects or breaks).
  // ``site``: another site to follow than the shown one (a site's own page, /sites/<id>).
  live(handler, site = obsy.site()) {
    const status = document.getElementById("live-status");
    const named = site ? `site ${site}: ` : "";
    const source = new EventSource(site ? `/api/v1/live?site=${encodeURIComponent(site)}` : "/api/v1/live");
    source.onopen = () => { if (status) { status.textContent = `${named}live`; status.className = "good"; } };
    source.onerror = () => { if (status) { status.textContent = "reconnecting…"; status.className = "bad"; } };
    source.onmessage = (event) => {
      const message = JSON.parse(event.data);
      handler(message.topic, message.payload);
    };
    return source;
  },
};

document.addEventListener("DOMContentLoaded", () => {
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await obsy.api("POST", "/api/v1/auth/logout").catch(() => null);
      location.assign("/login");
    });
  }
});
