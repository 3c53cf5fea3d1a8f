"""Headless chromium (Debian's ``chromium`` and ``chromium-driver``, ``make browser``) through
Selenium, as the dashboard's browser test and ``make page-load`` drive it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ("CHROMEDRIVER", "CHROMIUM", "headless_chromium")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def headless_chromium(*, page_load_limit: float, back_forward_cache: bool = True) -> Any:
    """A new headless chromium, 1400x1000, English; without its back/forward cache unless
    ``back_forward_cache``. FileNotFoundError when chromedriver is missing."""
    from selenium import webdriver  # noqa: PLC0415 - only where a browser is driven
    from selenium.webdriver.chrome.options import Options  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    if not CHROMEDRIVER.exists():
        msg = f"no {CHROMEDRIVER}: run `make browser`"
        raise FileNotFoundError(msg)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # these machines run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    if not back_forward_cache:
        options.add_argument("--disable-features=BackForwardCache")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(page_load_limit)
    return driver
