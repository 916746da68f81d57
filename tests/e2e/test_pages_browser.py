"""The on-call pages in a real browser: Debian's chromium (installed here through the project's own apt helper),
headless, against the analyzer on loopback — log in, list, open the incident, send feedback; nothing loads from
anywhere but the analyzer, and the page raises no console errors."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from analyzer.app import create_app
from hpcmind.services.proc import apt_install, http_ok, wait_until
from hpcmind.settings import Settings
from tests.conftest import free_port
from tests.unit.test_analyzer_app import TOKEN, XID, H, make_settings, payload

WAIT_S = 60  # a loaded 2-core machine: page loads and the first diagnosis are polled, never timed


@pytest.fixture(scope="module")
def browser(settings: Settings) -> Iterator[webdriver.Chrome]:
    apt_install(("chromium", "chromium-driver"), settings.services.run_dir / "logs" / "apt-chromium.log")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1600"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=DriverService("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def analyzer(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    s = make_settings(tmp_path, port=port)
    server = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(base + "/healthz"), WAIT_S, "analyzer")
        yield base
    finally:
        server.should_exit = True


def _requested_hosts(driver: webdriver.Chrome) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if url.startswith("http"):
                hosts.add(httpx.URL(url).host)
    return hosts


def _diagnosed(base: str) -> dict[str, Any] | None:
    items = httpx.get(base + "/api/v1/incidents", headers=H).json()["items"]
    return items[0] if items and items[0]["root_cause"] else None


def _shot(driver: webdriver.Chrome, name: str, tmp: Path) -> None:
    """Screenshots of each page (SCREENSHOTS_DIR=docs/screenshots refreshes the README's)."""
    for d in (tmp, Path(os.environ["SCREENSHOTS_DIR"]) if os.environ.get("SCREENSHOTS_DIR") else None):
        if d is not None:
            d.mkdir(parents=True, exist_ok=True)
            assert driver.save_screenshot(str(d / f"{name}.png"))


def test_login_list_incident_and_feedback_in_chromium(browser: webdriver.Chrome, analyzer: str, tmp_path: Path) -> None:
    httpx.post(analyzer + "/api/v1/alertmanager", json=payload(XID), headers=H).raise_for_status()
    deadline = time.monotonic() + WAIT_S
    while (inc := _diagnosed(analyzer)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert inc is not None, "the incident was not diagnosed"
    wait = WebDriverWait(browser, WAIT_S)

    browser.get(analyzer + "/incidents")  # no session: the gate sends the browser to the login form
    wait.until(lambda d: "/login" in d.current_url)
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button, form [type=submit]").click()
    wait.until(lambda d: "/incidents" in d.current_url and "/login" not in d.current_url)
    row = f'a[href="/incidents/{inc["id"]}"]'
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row))
    assert "gpu_hardware_fault" in browser.page_source and "GPU 3 on gpu-a012" in browser.page_source
    _shot(browser, "incident-list", tmp_path)

    def filtered(state: str, node: str) -> list[Any]:
        Select(browser.find_element(By.NAME, "state")).select_by_value(state)
        box = browser.find_element(By.NAME, "node")
        box.clear()
        box.send_keys(node)
        browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
        wait.until(lambda d: f"state={state}" in d.current_url)
        return browser.find_elements(By.CSS_SELECTOR, row)

    assert filtered("resolved", "") == []  # the incident is open
    assert filtered("open", "gpu-b001") == []  # and on another node
    filtered("open", "gpu-a012")[0].click()

    wait.until(lambda d: d.current_url.endswith(f"/incidents/{inc['id']}"))
    h1 = browser.find_element(By.TAG_NAME, "h1").text
    assert "gpu_hardware_fault" in h1
    first = browser.find_element(By.XPATH, "//p[starts-with(normalize-space(.), 'First:')]").text
    assert "gpu-a012" in first
    # the node's Grafana dashboard with its variable and the incident's time range, and a silence prefilled
    grafana = browser.find_element(By.PARTIAL_LINK_TEXT, "Grafana: node gpu-a012").get_attribute("href") or ""
    assert "/d/hpcmind-node/" in grafana and "var-host=gpu-a012" in grafana and "from=" in grafana
    silence = browser.find_element(By.PARTIAL_LINK_TEXT, "Silence GPUXidError").get_attribute("href") or ""
    assert "#/silences/new?filter=" in silence and "gpu-a012" in unquote(silence)
    _shot(browser, "incident-page", tmp_path)
    Select(browser.find_element(By.NAME, "true_root_cause")).select_by_value("nvlink_error")
    browser.find_element(By.NAME, "comment").send_keys("NVLink errors came first")
    browser.find_element(By.CSS_SELECTOR, 'button[value="wrong"]').click()
    wait.until(lambda d: "wrong, really" in d.page_source)
    assert "NVLink errors came first" in browser.page_source
    fb = httpx.get(f"{analyzer}/api/v1/incidents/{inc['id']}", headers=H).json()["feedback"]
    assert [(f["correct"], f["true_root_cause"]) for f in fb] == [(False, "nvlink_error")]

    browser.find_element(By.PARTIAL_LINK_TEXT, "Runbook for").click()
    wait.until(lambda d: "/runbooks/" in d.current_url)
    assert "gpu_hardware_fault" in browser.page_source
    _shot(browser, "runbook-page", tmp_path)

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe
    assert _requested_hosts(browser) <= {"127.0.0.1"}, "the pages load nothing from outside the analyzer"
