"""Headless Chromium for the tests that look at pages as a person would (Debian's chromium and
chromium-driver; under CI=true their absence fails the test, see service_missing)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import service_missing

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(
    *,
    window: str = "1200,1600",
    profile: Path | None = None,
    arguments: Sequence[str] = (),
    logs: Sequence[str] = ("browser",),
) -> Iterator[Any]:
    """A selenium driver of headless Chromium, quit on leaving.

    ``profile``: a user-data folder of the test's own; ``arguments``: more Chromium switches;
    ``logs``: the logs to keep (``browser`` for the console, ``performance`` for the network).
    """
    try:
        from selenium import webdriver
    except ImportError as exc:
        service_missing("selenium", exc)
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            service_missing("Chromium and chromedriver", f"{path} not found")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    switches = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    switches.append(f"--window-size={window}")
    if profile is not None:
        switches.append(f"--user-data-dir={profile}")
    for switch in (*switches, *arguments):
        options.add_argument(switch)
    options.set_capability("goog:loggingPrefs", {log: "ALL" for log in logs})
    try:
        browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        service_missing("Chromium and chromedriver", exc)
    try:
        yield browser
    finally:
        browser.quit()
