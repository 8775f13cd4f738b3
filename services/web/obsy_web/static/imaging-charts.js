// The Imaging page's and a target's page's charts of science results: a light curve drawn as SVG, and a
// fitted transit's figures. One script, so that both pages show a star's results the same way.
"use strict";

const imagingCharts = {
  COLOURS: ["#58a6ff", "#3fb950", "#f85149", "#d29922", "#bc8cff", "#39c5cf"],

  fmt(v, digits, unit) {
    return v === null || v === undefined ? "–" : `${Number(v).toFixed(digits)}${unit || ""}`;
  },

  // value ± error, as the fit gives it
  pm(value, error, digits, unit) {
    const fmt = imagingCharts.fmt;
    return value == null ? "–" : `${fmt(value, digits)}${error != null ? ` ± ${fmt(error, digits)}` : ""}${unit || ""}`;
  },

  // Points against JD, one colour per filter, with error bars; ``invert`` for magnitudes (bright up).
  plot(points, value, error, invert, label) {
    const COLOURS = imagingCharts.COLOURS;
    const usable = points.filter((p) => p.jd != null && p[value] != null);
    if (!usable.length) return '<p class="muted">no points</p>';
    const w = 800, h = 240, m = 36;
    const xs = usable.map((p) => p.jd), ys = usable.map((p) => p[value]);
    const errs = usable.map((p) => (error ? p[error] || 0 : 0));
    let x0 = Math.min(...xs), x1 = Math.max(...xs); if (x1 - x0 < 1e-6) { x0 -= 0.01; x1 += 0.01; }
    let y0 = Math.min(...ys.map((y, i) => y - errs[i])), y1 = Math.max(...ys.map((y, i) => y + errs[i]));
    if (y1 - y0 < 1e-3) { y0 -= 0.05; y1 += 0.05; }
    const X = (x) => m + (x - x0) / (x1 - x0) * (w - 2 * m);
    const Y = (y) => invert ? m / 2 + (y - y0) / (y1 - y0) * (h - m) : h - m / 2 - (y - y0) / (y1 - y0) * (h - m);
    const filters = [...new Set(usable.map((p) => p.filter || p.band || "–"))];
    const marks = usable.map((p, i) => {
      const colour = COLOURS[filters.indexOf(p.filter || p.band || "–") % COLOURS.length];
      const bar = errs[i] ? `<line x1="${X(p.jd)}" x2="${X(p.jd)}" y1="${Y(p[value] - errs[i])}" y2="${Y(p[value] + errs[i])}" stroke="${colour}" stroke-opacity=".6"/>` : "";
      return bar + `<circle class="point" cx="${X(p.jd)}" cy="${Y(p[value])}" r="3" fill="${colour}"><title>JD ${p.jd.toFixed(5)} · ${p[value].toFixed(3)}${errs[i] ? ` ± ${errs[i].toFixed(3)}` : ""} · ${obsy.escape(p.filter || p.band || "")}</title></circle>`;
    }).join("");
    const legend = filters.map((f, i) => `<text x="${w - m - 60 * (filters.length - i)}" y="12" fill="${COLOURS[i % COLOURS.length]}">${obsy.escape(f)}</text>`).join("");
    const top = invert ? y0 : y1, bottom = invert ? y1 : y0;
    return `<svg class="chart lightcurve" viewBox="0 0 ${w} ${h}" role="img" aria-label="${obsy.escape(label)}">` + marks + legend +
      `<text x="2" y="14">${top.toFixed(2)}</text><text x="2" y="${h - 4}">${bottom.toFixed(2)}</text>` +
      `<text x="${m}" y="${h - 4}">JD ${x0.toFixed(4)}</text><text x="${w - m - 90}" y="${h - 4}">${x1.toFixed(4)}</text></svg>`;
  },

  // A light curve (GET /api/v1/photometry/{target}) into #lightcurve, #checkcurve, #lc-summary and the
  // night's AAVSO report link #lc-report.
  showCurve(curve, target, night) {
    document.getElementById("lightcurve").innerHTML = imagingCharts.plot(curve.points, "magnitude", "error", true, `${target} light curve`);
    document.getElementById("checkcurve").innerHTML = imagingCharts.plot(curve.points, "check_residual", null, false, `${target} check star residual`);
    const measured = curve.points.filter((p) => p.magnitude != null).length;
    obsy.text("lc-summary", `${measured} of ${curve.points.length} lights with a magnitude`);
    const report = document.getElementById("lc-report"), reportUrl = night ? curve.reports[night] : undefined;
    report.hidden = !reportUrl; if (reportUrl) report.href = reportUrl;
  },

  // A transit night's figures (an item of GET /api/v1/transits): [name, HTML] rows of a <dl>.
  transitRows(t) {
    const {fmt, pm} = imagingCharts;
    if (t.status !== "fitted") return [["Status", obsy.escape(t.status)], ["Why", obsy.escape(t.reason || "")]];
    return [
      ["Mid-transit Tc (BJD_TDB)", pm(t.tc, t.tc_err, 5)],
      ["O−C", pm(t.o_minus_c_min, t.o_minus_c_err_min, 2, " min")],
      ["Depth", pm(t.depth == null ? null : t.depth * 100, t.depth_err == null ? null : t.depth_err * 100, 3, " %")],
      ["Rp/R*", pm(t.rp_rs, t.rp_rs_err, 4)], ["a/R*", pm(t.a_rs, t.a_rs_err, 2)], ["Inclination", pm(t.inc, t.inc_err, 2, "°")],
      ["Duration T14", pm(t.duration_h, t.duration_err_h, 3, " h")],
      ["Transit", t.partial ? `partial (${obsy.escape(t.contact || "")} only)` : "full"],
      ["Points", `${t.points_used} used, ${t.points_rejected} left out, ensemble of ${t.ensemble_size ?? "–"} stars`],
      ["χ²_red, β", `${fmt(t.chi2_reduced, 2)}, ${fmt(t.red_noise_beta, 2)}`],
    ];
  },

  transitFigures(t) {
    return imagingCharts.transitRows(t).map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  },

  // The fit's plot (PNG), its URL changed with each new fit so that a browser never shows an old one.
  transitPlot(t) {
    return t.plot ? `<img class="transit-plot" alt="${obsy.escape(t.planet)} light curve, ${obsy.escape(t.night)}" ` +
      `src="${t.plot}&t=${encodeURIComponent(t.time)}">` : "";
  },
};
