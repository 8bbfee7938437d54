"""A daemon serving the web UI on a loopback TCP port (and its unix socket), and a headless Chromium.

The browser is Debian's ``chromium`` driven by its ``chromedriver`` through Selenium,
with the launch flags that keep it off the network (no background requests, no
component updates, no sync, no QUIC) and a fresh profile per session.  Screenshots go
to ``<basetemp>/ui-screenshots``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemons import TcpDaemon, tcp_daemon

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--window-size=1400,1000")


UiDaemon = TcpDaemon


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory) -> Iterator[UiDaemon]:
    with tcp_daemon(tmp_path_factory.mktemp("dockyard-ui"), "--ui") as daemon:
        yield daemon


class Browser:
    """A Selenium session with the helpers the UI tests use."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.driver = driver
        self.shots = shots

    def wait(self, condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except Exception as exc:  # noqa: BLE001 - an element not there yet, a stale one
                value, error = None, exc
            else:
                error = None
            if value:
                return value
            if time.monotonic() > deadline:
                self.screenshot("timeout-" + what.replace(" ", "-")[:40])
                raise AssertionError(f"timed out waiting for {what}" + (f" ({error!r})" if error else "") +
                                     f"; browser log: {self.console()}")
            time.sleep(0.1)

    def find(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def test_id(self, name: str) -> Any:
        return self.find(f'[data-test="{name}"]')

    def click(self, name: str) -> None:
        self.wait(lambda: self.test_id(name).is_enabled() and self.test_id(name), what=f"{name} enabled").click()

    def text(self, name: str) -> str:
        return self.test_id(name).text

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def console(self) -> list[str]:
        try:
            return [entry["message"] for entry in self.driver.get_log("browser")]
        except Exception:  # noqa: BLE001 - the log is a diagnostic only
            return []


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), \
        "Debian's chromium and chromium-driver must be installed (contrib/setup.sh)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    shots = tmp_path_factory.getbasetemp() / "ui-screenshots"
    shots.mkdir(exist_ok=True)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=subprocess.DEVNULL))
    try:
        yield Browser(driver, shots)
    finally:
        driver.quit()
