"""Look at ``graphblocks view`` as a person would: the server in a process, the page in
Debian's headless Chromium (driven by Selenium through Debian's chromedriver).

Chromium draws Model Explorer's graph with WebGL, which headless Chromium gets in
software only with ``--enable-unsafe-swiftshader`` (measured: Chromium 156 refuses
otherwise). Used by tests/test_view.py and by ``make view-image`` (the README's picture).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
BROWSER_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--enable-unsafe-swiftshader", "--use-angle=swiftshader")  # fmt: skip
#: browser errors that are no fault of the page: the web font it asks the internet for
HARMLESS = ("fonts.gstatic.com", "fonts.googleapis.com")


def browser_available() -> bool:
    return CHROMIUM is not None and CHROMEDRIVER is not None


@contextmanager
def served(target: str, port: int, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``graphblocks view TARGET --no-browser --port PORT`` in a process, and the URL it
    prints once the server is up; Ctrl-C (SIGINT) on the way out."""
    command = [sys.executable, "-m", "graphblocks.cli", "view", target, "--no-browser",
               "--port", str(port), *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        yield process, _url_from(process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _url_from(process: subprocess.Popen[str], seconds: float = 180) -> str:
    assert process.stdout is not None
    deadline, lines = time.monotonic() + seconds, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if line.startswith("http://127.0.0.1:"):
            return line.strip()
    raise AssertionError("graphblocks view printed no URL:\n" + "".join(lines))


def open_page(url: str, width: int = 1400, height: int = 900) -> Any:
    """A headless Chromium on ``url`` (Selenium's WebDriver), its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in (*BROWSER_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.get(url)
    return driver


def wait_until(condition: Any, seconds: float = 60, step: float = 0.5) -> Any:
    """``condition()``'s first truthy value within ``seconds`` (an AssertionError if none)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true within {seconds} s")


def page_errors(driver: Any) -> list[str]:
    """The console's errors (JavaScript exceptions, failed loads) but the harmless ones."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(h in entry["message"] for h in HARMLESS)
    ]


def screenshot(target: str, path: Path, settle: float = 8.0) -> Path:
    """Serve ``target`` on a free port, wait for the graph, and save the page as a PNG
    at ``path``."""
    from selenium.webdriver.common.by import By

    from graphblocks.view import free_port

    with served(target, free_port()) as (_, url):
        driver = open_page(url)
        try:
            wait_until(lambda: driver.find_elements(By.TAG_NAME, "canvas"))
            time.sleep(settle)  # the layout animates in
            driver.save_screenshot(str(path))
        finally:
            driver.quit()
    return path


if __name__ == "__main__":  # python -m tests.browser MODEL OUT.png
    screenshot(sys.argv[1], Path(sys.argv[2]))
