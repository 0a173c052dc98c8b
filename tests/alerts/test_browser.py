"""The rendered HTML mail, opened in headless Chromium, shows its text and plots.

Run with ``TIDEWATCH_UPDATE_DOCS=1`` to refresh ``docs/email-example.png`` from the screenshot
(left off otherwise, so a test run never changes the working tree).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from alerts.email import html_with_data_uris, render_email
from alerts.notification import Notification
from tests.conftest import service_missing

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS_EXAMPLE = Path(__file__).parents[2] / "docs" / "email-example.png"


def screenshot(page: Path, profile: Path) -> tuple[bytes, str]:
    """PNG screenshot and page source of a local HTML file in headless Chromium."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        service_missing("selenium", exc)
    chromium = shutil.which("chromium") or CHROMIUM
    chromedriver = shutil.which("chromedriver") or CHROMEDRIVER
    if not (Path(chromium).exists() and Path(chromedriver).exists()):
        service_missing("Chromium", f"need {chromium} and {chromedriver} (Debian chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1000,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        driver.get(page.as_uri())
        return driver.get_screenshot_as_png(), driver.page_source
    finally:
        driver.quit()


def test_mail_renders_in_a_browser(tmp_path: Path, firing: Notification) -> None:
    page = tmp_path / "email.html"
    page.write_text(html_with_data_uris(render_email(firing, "tidewatch@example.org")))
    png, source = screenshot(page, tmp_path / "chromium-profile")

    with Image.open(io.BytesIO(png)) as image:
        rgb = image.convert("RGB")
        assert rgb.width >= 900 and rgb.height >= 1000
        colours = rgb.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50, "the screenshot looks blank"
    for text in ("plankton", "brightness", "area", "since", "Grafana dashboard"):
        assert text in source

    (tmp_path / "email.png").write_bytes(png)
    if os.environ.get("TIDEWATCH_UPDATE_DOCS"):
        DOCS_EXAMPLE.write_bytes(png)
