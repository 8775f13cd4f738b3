"""Run every benchmark module (``bench/bench_*.py``, each with a ``main()``), or those named.

Arguments starting with ``-`` (``--full``) are left to the benchmarks, which read ``sys.argv``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = [a for a in argv if not a.startswith("-")] or sorted(p.stem for p in here.glob("bench_*.py"))
    if not names:
        print("no benchmarks yet (bench/bench_*.py)")
        return 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"=== {name}", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
