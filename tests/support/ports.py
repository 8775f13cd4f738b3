"""Free TCP ports on loopback for servers the tests start.

Each pytest-xdist worker hands out ports from a block of its own, below the kernel's ephemeral range
(32768 and up on Linux): a port the kernel picks with ``bind(("127.0.0.1", 0))`` is free when picked,
but another worker may pick the same number before the first test's server binds it (seen: a demo's
launcher found "its" broker port already answering, another test's Mosquitto), and the kernel hands
numbers of that range to every outgoing connection too. A port is still checked free before it is
given out; a worker goes round its block, so a number comes back only after a thousand others.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import socket
import time
from collections.abc import Iterator

#: The blocks, all below 32768: worker ``gwN`` takes the ``N % (WORKER_BLOCKS - 1)``-th, a process outside
#: pytest-xdist the last.
FIRST_PORT, BLOCK_SIZE, WORKER_BLOCKS = 10000, 1000, 22


def _block() -> range:
    """This process's ports: its xdist worker's block, or the last one outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = worker[2:]
    index = int(number) % (WORKER_BLOCKS - 1) if worker.startswith("gw") and number.isdigit() else WORKER_BLOCKS - 1
    start = FIRST_PORT + index * BLOCK_SIZE
    return range(start, start + BLOCK_SIZE)


def _round(block: range) -> Iterator[int]:
    """The block's ports in turn, from a random one (two test runs at once seldom meet)."""
    first = random.randrange(len(block))
    return itertools.cycle([*block[first:], *block[:first]])


@functools.cache
def _ports() -> Iterator[int]:
    return _round(_block())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds now, from this worker's own block."""
    ports = _ports()
    for _ in range(BLOCK_SIZE):
        port = next(ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # a server of this machine, or one a test has not let go of yet
            return port
    raise RuntimeError(f"no free TCP port in {_block()} on 127.0.0.1")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until something accepts connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def wait_port_closed(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                time.sleep(0.05)
        except OSError:
            return
    raise TimeoutError(f"{host}:{port} still accepts connections after {timeout} s")
