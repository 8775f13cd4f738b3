"""Screenshots of the live dashboard during the end-to-end night (Playwright, Debian's Chromium).

Each shot goes to the test's own folder; with ``OBSY_E2E_SCREENSHOTS=<folder>`` (for example
``docs/walkthrough``) a copy with fewer colour levels goes there too, small enough to
commit with the docs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.support.lazy_import import installed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS_ENV = "OBSY_E2E_SCREENSHOTS"
VIEWPORT = {"width": 1200, "height": 900}


def browser_available() -> bool:
    if CHROMIUM is None:
        return False
    return installed("playwright.sync_api")  # not imported here: the tests' modules call this at collection


class DashboardCamera:
    """A logged-in browser page on the dashboard that photographs it on request."""

    def __init__(self, url: str, username: str, password: str, folder: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.url = url.rstrip("/")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.docs_folder = Path(os.environ[SCREENSHOTS_ENV]) if os.environ.get(SCREENSHOTS_ENV) else None
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        self.page: Any = self._browser.new_context(viewport=VIEWPORT).new_page()
        self.page.goto(f"{self.url}/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.url}/")
        self.shots: list[Path] = []

    def expect_text(self, selector: str, text: str, timeout_s: float = 10.0) -> None:
        """Wait until the live page shows ``text`` in ``selector`` (no reload)."""
        from playwright.sync_api import expect

        expect(self.page.locator(selector)).to_contain_text(text, timeout=timeout_s * 1000)

    def wait_image_loaded(self, element_id: str, timeout_s: float = 20.0) -> None:
        """Wait until the ``<img id=...>`` shows a decoded picture (a broken image never does)."""
        script = "id => { const i = document.getElementById(id); return !!i && !i.hidden && i.naturalWidth > 0; }"
        self.page.wait_for_function(script, arg=element_id, timeout=timeout_s * 1000)

    def shoot(self, name: str, path: str | None = None, *, ready: str | None = None, part: str | None = None) -> Path:
        """Screenshot the live overview, or the dashboard page at ``path`` (opened beside it).

        ``ready``: a JavaScript expression (:func:`images_loaded`, for example) waited for until it
        is true, so that the shot shows what the page loads after it opens (pictures, charts);
        ``part``: a CSS selector, to photograph that element only (one card of a long page).
        """
        target = self.folder / f"{name}.png"
        page = self.page if path is None else self.page.context.new_page()
        if path is not None:
            page.goto(f"{self.url}{path}")
            page.wait_for_load_state("networkidle")
        if ready is not None:
            page.wait_for_function(ready, timeout=30_000)
        if part is not None:
            page.locator(part).first.screenshot(path=target)
        else:
            page.screenshot(path=target, full_page=True)
        if path is not None:
            page.close()
        path = target
        self.shots.append(path)
        if self.docs_folder is not None:
            self.docs_folder.mkdir(parents=True, exist_ok=True)
            _small_png(path, self.docs_folder / path.name)
        return path

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()


def images_loaded(selector: str) -> str:
    """A ``ready`` expression for :meth:`DashboardCamera.shoot`: the page holds an ``<img>`` matching
    ``selector`` and every one of them is decoded (a broken or loading picture is not)."""
    return (
        f"(() => {{ const images = [...document.querySelectorAll({selector!r})]; "
        "return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0); })()"
    )


def _small_png(source: Path, target: Path) -> None:
    """The screenshot with 8 levels per channel, compressed hardest: a fraction of the size.

    A dashboard is flat colour and text, so the coarser levels are not visible; OpenCV is
    already installed for the allsky and clouddetect services.
    """
    import cv2

    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    image = (((image.astype("int32") + 16) // 32) * 32).clip(0, 255).astype("uint8")  # nearest level
    cv2.imwrite(str(target), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
