"""Fit a light curve with EXOTIC's own fitter (exotic.api.elca.lc_fitter, nested sampling), as
EXOTIC 4.3 fits a night: Rp/R*, Tc, inc and the airmass exponent free, a/R* and the period fixed.

Run by EXOTIC's interpreter (its own virtual environment: it pins an older numpy and astropy),
never imported by OBSY. Reads a JSON object on stdin (time, flux, flux_err, airmass, prior,
bounds), writes one on stdout (tmid, tmid_err, rprs, rprs_err, inc, a2, seconds).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time


def main() -> None:
    given = json.load(sys.stdin)
    # EXOTIC talks on stdout (its import also tries to download catalogues, and says when it cannot).
    with contextlib.redirect_stdout(io.StringIO()):
        import numpy as np
        from exotic.api.elca import lc_fitter

        started = time.perf_counter()
        fit = lc_fitter(
            np.array(given["time"]),
            np.array(given["flux"]),
            np.array(given["flux_err"]),
            np.array(given["airmass"]),
            given["prior"],
            given["bounds"],
            mode="ns",
            verbose=False,
        )
    result = {
        "tmid": fit.parameters["tmid"],
        "tmid_err": fit.errors["tmid"],
        "rprs": fit.parameters["rprs"],
        "rprs_err": fit.errors["rprs"],
        "inc": fit.parameters["inc"],
        "a2": fit.parameters.get("a2"),
        "seconds": time.perf_counter() - started,
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
