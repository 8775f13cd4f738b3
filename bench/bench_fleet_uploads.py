"""Site → centre uploads on loopback: throughput per chunk size, and what a cut costs.

A real centre (the web service, SQLite, its own Mosquitto) with one bridged site; the site's
uploader (``obsy.upload``) sends ``--files`` random files of ``--mib`` MiB each, once per chunk
size, and reports MiB/s (first HEAD to the last 201, SHA-256 at both ends included). Then one
file is cut in the middle (the uploader stopped, as a service restart does) and resumed by a new
uploader: the bytes the centre held at the cut, and the bytes sent again (the centre's own count
minus the file's size: 0 when nothing is sent twice).

Everything shares this machine's cores (the figures in docs/scaling.md were taken on 2 shared
cores). ``--files=N`` (default 4), ``--mib=M`` (default 32).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obsy.upload import Uploader, UploadQueue
from tests.support.web_server import web_on

MIB = 1024 * 1024


def token_for(web) -> str:
    web.add_user("benchsite", "operator", sites=["north"])
    with web.token_client("benchsite") as client:
        return client.headers["Authorization"].removeprefix("Bearer ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mib", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "centre").mkdir()
        with web_on("sqlite", work / "centre", {}, sites=[{"prefix": "sites/north"}]) as web:
            token = token_for(web)
            site = work / "site"
            for chunk_mib in (1, 4, 16):
                queue = UploadQueue(site / f"queue-{chunk_mib}")
                for number in range(args.files):
                    path = site / "allsky" / "2026-12-05" / f"c{chunk_mib}-{number}.fits"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(os.urandom(args.mib * MIB))
                    queue.put(path, path.relative_to(site).as_posix())
                sender = Uploader(queue, web.url, "north", token, chunk_bytes=chunk_mib * MIB)
                started = time.perf_counter()
                sender.start()
                while len(queue):
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
                sender.stop()
                total = args.files * args.mib
                print(f"chunk {chunk_mib:2d} MiB: {total} MiB in {elapsed:.2f} s = {total / elapsed:.1f} MiB/s")

            # A cut in the middle: the first uploader stopped at about half, a new one resumes.
            path = site / "allsky" / "2026-12-05" / "cut.fits"
            path.write_bytes(os.urandom(args.mib * MIB))
            remote = path.relative_to(site).as_posix()
            queue = UploadQueue(site / "queue-cut")
            queue.put(path, remote)
            first = Uploader(queue, web.url, "north", token, chunk_bytes=MIB, max_bytes_per_s=args.mib * MIB / 2)
            first.start()
            time.sleep(1.0)
            first.stop()
            store = web.service.context.uploads
            held = store.received[("north", remote)]
            second = Uploader(UploadQueue(site / "queue-cut"), web.url, "north", token, chunk_bytes=4 * MIB)
            started = time.perf_counter()
            second.start()
            while len(second.queue):
                time.sleep(0.02)
            second.stop()
            again = store.received[("north", remote)] - path.stat().st_size
            same = (web.data_dir / "sites" / "north" / remote).read_bytes() == path.read_bytes()
            print(
                f"cut at {held / MIB:.1f} of {args.mib} MiB; resumed at {held / MIB:.1f} MiB, the rest in "
                f"{time.perf_counter() - started:.2f} s; bytes sent twice: {again}; byte-identical: {same}"
            )


if __name__ == "__main__":
    main()
