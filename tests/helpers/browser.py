"""A headless Chromium, as a Selenium session with the helpers the UI tests use.

The browser is Debian's ``chromium`` driven by its ``chromedriver`` (``requires_chromium``), with
launch flags that keep it off the network (no background requests, no component updates, no sync,
no QUIC) and a fresh profile per session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.waiting import wait_for

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--window-size=1400,1000",
)


class Browser:
    """A Selenium session with the helpers the UI tests use."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.driver = driver
        self.shots = shots

    def wait(self, condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
        """``condition()``'s first truthy value (an exception counts as not yet: an element not there
        yet, a stale one); at the timeout, a screenshot and the browser's log in the failure."""
        errors: list[BaseException] = []

        def attempt() -> Any:
            try:
                return condition()
            except Exception as exc:  # noqa: BLE001
                errors[:] = [exc]
                return None

        value = wait_for(attempt, timeout, interval=0.1)
        if not value:
            self.screenshot("timeout-" + what.replace(" ", "-")[:40])
            raise AssertionError(
                f"timed out waiting for {what}"
                + (f" ({errors[0]!r})" if errors else "")
                + f"; browser log: {self.console()}"
            )
        return value

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
