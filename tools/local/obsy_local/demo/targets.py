"""Demo targets, created through the web API: the night of science's three (the transit, the
variable's time series and an LRGB target, :mod:`obsy_local.demo.science`), or, without it, bright
catalogue objects high in the demo's sky.

The web service looks catalogue objects up in its offline catalogue (``catalogue_name``); the
coordinates below (J2000, rounded) only choose which are high now.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from obsy_local.demo.site import altitude_deg, local_sidereal_deg

#: name the catalogue knows -> (RA, Dec) in degrees; spread over the sky, north and south.
CANDIDATES: dict[str, tuple[float, float]] = {
    "NGC 55": (3.8, -39.2),
    "NGC 104": (6.0, -72.1),
    "NGC 300": (13.7, -37.7),
    "NGC 362": (15.8, -70.8),
    "M74": (24.2, 15.8),
    "M77": (40.7, 0.0),
    "NGC 1316": (50.7, -37.2),
    "M79": (81.0, -24.5),
    "M41": (101.5, -20.7),
    "M47": (114.1, -14.5),
    "NGC 3372": (161.3, -59.9),
    "NGC 4755": (193.4, -60.4),
    "M4": (245.9, -26.5),
    "M11": (282.8, -6.3),
    "M55": (295.0, -31.0),
    "M30": (325.1, -23.2),
    "NGC 7293": (337.4, -20.8),
    "M31": (10.7, 41.3),
    "NGC 253": (11.9, -25.3),
    "M33": (23.5, 30.7),
    "M45": (56.9, 24.1),
    "M42": (83.8, -5.4),
    "M1": (83.6, 22.0),
    "NGC 2070": (84.7, -69.1),
    "M35": (92.3, 24.3),
    "M44": (130.1, 19.7),
    "M81": (148.9, 69.1),
    "M65": (169.7, 13.1),
    "M104": (190.0, -11.6),
    "NGC 5139": (201.7, -47.5),
    "M51": (202.5, 47.2),
    "M83": (204.3, -29.9),
    "M3": (205.5, 28.4),
    "M101": (210.8, 54.3),
    "M5": (229.6, 2.1),
    "M13": (250.4, 36.5),
    "M7": (268.5, -34.8),
    "M8": (270.9, -24.4),
    "M22": (279.1, -23.9),
    "M57": (283.4, 33.0),
    "M27": (299.9, 22.7),
    "NGC 7000": (314.7, 44.3),
    "M15": (322.5, 12.2),
    "M52": (351.2, 61.6),
}
#: The candidates that are nebulae (emission, planetary, supernova remnant): the LRGB target's first choice.
NEBULAE = frozenset({"M42", "M1", "M8", "M27", "M57", "NGC 7000", "NGC 7293", "NGC 3372", "NGC 2070"})
MIN_ALTITUDE_DEG = 45.0
EXPOSURE_PLAN = [{"filter": "Luminance", "exposure_s": 10, "count": 30}]


class DemoSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoTarget:
    name: str
    altitude: float


def high_targets(
    latitude: float, longitude: float, when: datetime, count: int = 3, names: frozenset[str] | None = None
) -> list[DemoTarget]:
    """The ``count`` candidates (of ``names``, if given) highest in the sky at ``when`` (each at least
    MIN_ALTITUDE_DEG up)."""
    lst = local_sidereal_deg(longitude, when)
    ranked = sorted(
        (
            DemoTarget(name, round(altitude_deg(latitude, lst, ra, dec), 1))
            for name, (ra, dec) in CANDIDATES.items()
            if names is None or name in names
        ),
        key=lambda target: -target.altitude,
    )
    return [target for target in ranked if target.altitude >= MIN_ALTITUDE_DEG][:count]


class WebSession:
    """A logged-in session on the web API (cookie and CSRF token), with the standard library only."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = ""

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-CSRF-Token": self.csrf}
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=self.timeout) as reply:
                text = reply.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise DemoSetupError(f"{method} {path} answered {error.code}: {detail}") from None
        except OSError as error:
            raise DemoSetupError(f"{method} {path} failed: {error}") from None
        return json.loads(text) if text else None

    def login(self, username: str, password: str) -> None:
        me = self.request("POST", "/api/v1/auth/login", {"username": username, "password": password})
        self.csrf = me.get("csrf_token") or ""


def wait_for_web(base_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise DemoSetupError(f"the web service did not answer at {base_url} within {timeout:.0f} s") from None
            time.sleep(0.5)


def catalogue_bodies(targets: list[DemoTarget]) -> list[dict[str, Any]]:
    """Catalogue objects as the web API's target bodies (the web looks their coordinates up)."""
    return [
        {"catalogue_name": t.name, "priority": 5, "exposure_plans": EXPOSURE_PLAN, "notes": "demo target"}
        for t in targets
    ]


def create_targets(session: WebSession, bodies: list[dict[str, Any]]) -> list[str]:
    """Create the targets (web API bodies) that do not exist yet; the names of those created."""
    existing = {t["name"] for t in session.request("GET", "/api/v1/targets")}
    created = []
    for body in bodies:
        name = body.get("name") or body["catalogue_name"]
        if name in existing:
            continue
        session.request("POST", "/api/v1/targets", body)
        created.append(name)
    return created
