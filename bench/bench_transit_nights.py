"""The issue's transit figures on sky-simulator frames (issue 20): 20 seeded nights of 300 rendered
main-camera frames each, reduced from the frames and fitted (``tests.support.transits``). Printed: each
night, then Tc within 1σ of the truth (goal ≥ 68 %), the largest |Tc − truth|/σ (goal < 3), the reported
σ over the scatter of Tc (goal within a factor 1.5) and the depth errors (goal < 10 %). About 15 minutes
of CPU; ``--nights=N`` for fewer.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

logging.getLogger("emcee").setLevel(logging.ERROR)


def main() -> None:
    from tests.support.transits import fit_simulator_nights

    nights = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--nights=")), 20)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="obsy-bench-transit-nights-") as tmp:
        fitted = fit_simulator_nights(Path(tmp), range(nights))
    print(f"{nights} simulator nights in {time.perf_counter() - started:.0f} s: {fitted.summary()}")


if __name__ == "__main__":
    main()
