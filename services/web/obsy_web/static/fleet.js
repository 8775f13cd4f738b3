// The fleet's pages: the closing commands a centre may send to a bridged site (never OPEN).
"use strict";

const fleet = {
  // What the centre may send: roof CLOSE/STOP, night ABORT (POST /api/v1/fleet/{site}/commands/...).
  COMMANDS: [["roof", "CLOSE"], ["roof", "STOP"], ["night", "ABORT"]],

  // The dashboard's pages that can show a site (?site=<id>; pages.SITE_PAGES).
  PAGES: [["/", "overview"], ["/weather", "weather"], ["/allsky", "allsky"], ["/imaging", "imaging"],
    ["/plan", "plan"], ["/events", "events"]],

  pageLinks(siteId) {
    const site = encodeURIComponent(siteId);
    return fleet.PAGES.map(([path, title]) => `<a class="site-page" href="${path}?site=${site}">${title}</a>`).join(" · ");
  },

  buttons(site) {
    return fleet.COMMANDS.map(([thing, action]) =>
      `<button type="button" class="site-command" data-site="${obsy.escape(site.id)}" data-thing="${thing}" ` +
      `data-action="${action}"${site.reachable ? "" : " disabled title=\"unreachable\""}>${action}</button>`).join(" ");
  },

  // Sends one command on a click of a button made by buttons(); reports the answer in `out`.
  wire(container, out) {
    container.addEventListener("click", async (event) => {
      const button = event.target.closest("button.site-command");
      if (!button) return;
      const {site, thing, action} = button.dataset;
      if (action !== "STOP" && !confirm(`${action} at site ${site}?`)) return;
      button.disabled = true;
      try {
        const reply = await obsy.api("POST", `/api/v1/fleet/${encodeURIComponent(site)}/commands/${thing}`, {action});
        out.textContent = `${site}: ${thing} ${action} ` + (reply.accepted === false ? "refused by the site" : "sent");
        out.className = reply.accepted === false ? "warning" : "info";
      } catch (error) {
        out.textContent = `${site}: ${thing} ${action} not sent: ${error.message}`;
        out.className = "warning";
      } finally {
        button.disabled = false;
      }
    });
  },
};
