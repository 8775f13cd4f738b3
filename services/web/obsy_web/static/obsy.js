// OBSY dashboard helpers: API calls with the CSRF token, the live feed, small DOM helpers.
"use strict";

const obsy = {
  csrf() {
    return document.querySelector('meta[name="csrf-token"]')?.content || "";
  },

  // Calls the REST API; resolves to the parsed JSON, throws an Error carrying the API's message.
  async api(method, url, body) {
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

  // Subscribes to /api/v1/live; calls handler(topic, payload) for every bus message.
  live(handler) {
    const status = document.getElementById("live-status");
    const source = new EventSource("/api/v1/live");
    source.onopen = () => { if (status) { status.textContent = "live"; status.className = "good"; } };
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
