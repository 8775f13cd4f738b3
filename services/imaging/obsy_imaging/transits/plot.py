"""The light-curve plot of a fitted transit night: the detrended points (each, and binned), the
model, and the residuals below, with Tc, the depth and O−C in the title. A PNG, drawn with
matplotlib's Agg backend (no display; the figure object is used directly, not pyplot, so nothing
global changes in the service)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from obsy_imaging.transits.fit import TransitFit

#: The PNG's size in pixels (width, height).
SIZE_PX = (1000, 700)
DPI = 100
#: Points per bin of the binned curve: about ten-minute bins at a minute's cadence.
BIN_MINUTES = 10.0


def binned(
    time: np.ndarray, values: np.ndarray, minutes: float = BIN_MINUTES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means (and their standard errors) of ``values`` in bins of ``minutes``; bins with one point left out."""
    edges = np.arange(time[0], time[-1] + minutes / 1440.0, minutes / 1440.0)
    index = np.digitize(time, edges)
    centres, means, errors = [], [], []
    for i in np.unique(index):
        inside = index == i
        if inside.sum() < 2:
            continue
        centres.append(time[inside].mean())
        means.append(values[inside].mean())
        errors.append(values[inside].std(ddof=1) / np.sqrt(inside.sum()))
    return np.array(centres), np.array(means), np.array(errors)


def light_curve_png(fit: TransitFit, title: str) -> bytes:
    """The plot of one fit as PNG bytes (:data:`SIZE_PX`)."""
    figure = Figure(figsize=(SIZE_PX[0] / DPI, SIZE_PX[1] / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    hours = (fit.time - fit.tc.value) * 24.0
    residual_ppt = 1000.0 * (fit.detrended - fit.transit)
    top.plot(hours, fit.detrended, ".", color="0.65", markersize=3, label="each frame (detrended)")
    centres, means, errors = binned(fit.time, fit.detrended)
    if len(centres):
        top.errorbar((centres - fit.tc.value) * 24.0, means, errors, fmt="o", color="tab:blue", markersize=4,
                     label=f"{BIN_MINUTES:.0f}-minute bins")  # fmt: skip
    top.plot(hours, fit.transit, "-", color="tab:red", linewidth=1.5, label="model")
    top.set_ylabel("relative flux")
    top.legend(loc="lower left", fontsize="small")
    top.set_title(title, fontsize="medium")
    bottom.plot(hours, residual_ppt, ".", color="0.65", markersize=3)
    centres, means, errors = binned(fit.time, residual_ppt)
    if len(centres):
        bottom.errorbar((centres - fit.tc.value) * 24.0, means, errors, fmt="o", color="tab:blue", markersize=4)
    bottom.axhline(0.0, color="tab:red", linewidth=1.0)
    bottom.set_ylabel("residual (ppt)")
    bottom.set_xlabel("hours from the fitted mid-transit")
    for axes in (top, bottom):
        for contact in (-fit.duration.value / 2.0, fit.duration.value / 2.0):
            axes.axvline(24.0 * contact, color="0.8", linewidth=0.8, linestyle="--")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()
