"""A daemon serving the web UI on a loopback TCP port (and its unix socket), and a headless Chromium
(:mod:`tests.helpers.browser`).  Screenshots go to ``<basetemp>/ui-screenshots``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.helpers.browser import CHROMIUM_FLAGS, Browser
from tests.helpers.daemon import TcpDaemon, tcp_daemon
from tests.helpers.requirements import require


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory) -> Iterator[TcpDaemon]:
    with tcp_daemon(tmp_path_factory.mktemp("dockyard-ui"), "--ui") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    require("chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    shots = tmp_path_factory.getbasetemp() / "ui-screenshots"
    shots.mkdir(exist_ok=True)
    service = Service(shutil.which("chromedriver"), log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield Browser(driver, shots)
    finally:
        driver.quit()
