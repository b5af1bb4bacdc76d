"""The ward view in a real headless Chromium against a worker on the real broker: a replayed AF recording puts
the alert on the page, and the page's Acknowledge button changes its state on the alert topic."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.kafka.clients import consume, producer
from streamer.kafka.topics import ensure_topics
from streamer.offline.golden import GOLDENS, expected_path, session_path
from streamer.sessions.format import read_session
from tests.conftest import REPO_ROOT, settings_env

pytestmark = pytest.mark.integration
QUIET = {"silence_timeout_s": 3600.0}  # no wall-clock DEVICE_SILENT while the machine is slow
USER = "nurse-ward-3"
WAIT_S = 240


def _free_port() -> int:
    """The first free port from VITALS_TEST_WEB_PORT (default 29480) on, so clones running tests at once differ."""
    base = int(os.environ.get("VITALS_TEST_WEB_PORT", "29480"))
    for port in range(base, base + 10):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + 9}")


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are missing: `make browser` installs them (.ci/install-browser.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,800"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


@pytest.fixture
def ward_factory(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen] = []

    def start(settings) -> str:
        port = _free_port()
        log = (tmp_path / "ward.log").open("ab")
        cmd = [sys.executable, "-m", "streamer.cli.main", "ward", "--port", str(port), "--user", USER]
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, env=settings_env(settings), stdout=log, stderr=log))
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "api/ward", timeout=2) as resp:
                    json.loads(resp.read())
                return url
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"ward view not up: {(tmp_path / 'ward.log').read_text()[-2000:]}")

    yield start
    for p in procs:
        p.terminate()
        p.wait(30)


def _replay_af(settings) -> None:
    prod = producer(settings)
    for r in read_session(session_path(next(g for g in GOLDENS if g.name == "mitdb202_af_onset"))):
        prod.send(settings.topics.telemetry, key=r.key, value=r.value)
    prod.flush()
    prod.close()


def _open_at_end(golden: str, condition: str) -> str:
    g = next(g for g in GOLDENS if g.name == golden)
    transitions = json.loads(expected_path(g).read_text())["alerts"]
    resolved = {a["alert_id"] for a in transitions if a["state"] == "RESOLVED"}
    (open_id,) = {a["alert_id"] for a in transitions if a["condition"] == condition} - resolved
    return str(open_id)


def _click_ack(driver, alert_id: str) -> bool:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:  # the table is redrawn on every update: find the button afresh and click it
        driver.find_element("css selector", f"tr[data-alert-id='{alert_id}'] button.ack").click()
        return True
    except (NoSuchElementException, StaleElementReferenceException):
        return False


def _state_on_page(driver, alert_id: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return driver.find_element("css selector", f"tr[data-alert-id='{alert_id}'] td.state").text
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def test_af_alert_appears_and_is_acknowledged_from_the_page(
    settings_factory, worker_factory, ward_factory, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    settings = settings_factory(**QUIET)
    ensure_topics(settings)
    worker_factory(settings)
    browser.get(ward_factory(settings))
    _replay_af(settings)

    # The recording has two AF episodes (the first resolves at 26:02): acknowledge the one still open at its end,
    # known from the golden expectation (alert ids are deterministic: device, condition, episode start).
    alert_id = _open_at_end("mitdb202_af_onset", "AF_EPISODE")
    wait = WebDriverWait(browser, WAIT_S, poll_frequency=0.5)
    wait.until(lambda d: d.find_elements("css selector", f"#alerts tr[data-alert-id='{alert_id}']"))
    wait.until(lambda d: d.find_elements("css selector", "#devices tr[data-device-id='mitdb-202']"))
    assert _state_on_page(browser, alert_id) == "RAISED"
    browser.save_screenshot(str(tmp_path / "ward.png"))
    if os.environ.get("VITALS_WARD_SCREENSHOT"):  # `make screenshots` keeps it for docs/
        shutil.copy(tmp_path / "ward.png", os.environ["VITALS_WARD_SCREENSHOT"])

    wait.until(lambda d: _click_ack(d, alert_id))
    wait.until(lambda d: _state_on_page(d, alert_id) == "ACKNOWLEDGED")

    on_topic = [
        json.loads(r.value) for r in consume(settings, [settings.topics.alerts], from_beginning=True, idle_timeout_s=3)
    ]
    acked = [a for a in on_topic if a["alert_id"] == alert_id and a["state"] == "ACKNOWLEDGED"]
    assert len(acked) == 1 and acked[0]["evidence"]["values"]["by"] == USER
