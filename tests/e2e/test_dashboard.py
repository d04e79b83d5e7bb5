"""The dashboard in a real headless Chromium, against a running `tocsin serve` on both backends.

A person signs in with a token, watches an alert arrive without reloading, acknowledges it from
its page, edits a template with a live preview; a viewer sees no buttons and a forged POST from
the viewer's session is refused. Each page is saved as a screenshot (the run prints where).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable as skip_or_fail

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
)
WAIT_SECONDS = 20.0
DISK_FULL = {
    "status": "firing", "groupKey": '{}:{alertname="DiskFull"}', "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"alertname": "DiskFull", "instance": "db-1"},
    "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1"}}],
}


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    skip_or_fail(f"`{names[0]}` is not installed (apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium for the module; each test clears its cookies."""
    chromium = _binary("chromium", "chromium-browser")
    chromedriver = _binary("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="tocsin-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The browser on one Tocsin server, with the helpers the tests share."""

    def __init__(self, driver, tocsin, screenshots: Path, backend: str):
        self.driver, self.tocsin, self.folder, self.backend = driver, tocsin, screenshots, backend
        driver.delete_all_cookies()
        driver.set_window_size(1280, 900)

    def open(self, path: str) -> None:
        self.driver.get(self.tocsin.base_url + path)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, condition, describe: str):
        from selenium.common.exceptions import (
            StaleElementReferenceException,
            TimeoutException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        # The page updates itself: an element found a moment ago may have been replaced since.
        waiting = WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.2,
                                ignored_exceptions=(StaleElementReferenceException,))  # fmt: skip
        try:
            return waiting.until(lambda _: condition())
        except TimeoutException:
            self.shot("timeout")
            pytest.fail(f"timed out after {WAIT_SECONDS:g}s waiting for {describe} on {self.driver.current_url}",
                        pytrace=False)

    def text(self, css: str) -> str:
        found = self.find_all(css)
        return found[0].text if found else ""

    def shot(self, name: str) -> Path:
        path = self.folder / f"{self.backend}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def sign_in(self, token: str) -> None:
        self.open("/")
        assert "/sign-in" in self.driver.current_url, "an anonymous visitor is sent to the sign-in page"
        self.find("#token").send_keys(token)
        self.shot("sign-in")
        self.find("form button[type=submit]").click()
        self.wait(lambda: self.find_all("#live-list"), "the alert group list after signing in")

    def mark(self) -> None:
        """Tag this document; a reload would lose the tag."""
        self.driver.execute_script("window.tocsinNoReload = 'still here';")

    def not_reloaded(self) -> bool:
        return self.driver.execute_script("return window.tocsinNoReload || null;") == "still here"


@pytest.fixture
def page(browser, tocsin, screenshots, backend) -> Page:
    return Page(browser, tocsin, screenshots, backend)


def _integration(tocsin, name: str) -> dict:
    status, integration = tocsin.api("POST", "/api/v1/integrations/", {"type": "alertmanager", "name": name})
    assert status == 201, (status, integration)
    return integration


def _post_alert(tocsin, integration: dict, body: dict) -> None:
    from tests.e2e.conftest import http

    status, answer = http("POST", integration["link"], body)
    assert (status, answer) == (200, "Ok."), (status, answer)


def _groups(tocsin, integration: dict) -> list[dict]:
    status, body = tocsin.api("GET", f"/api/v1/alert_groups/?integration_id={integration['id']}")
    assert status == 200, body
    return body["results"]


def test_an_alert_appears_live_and_is_acknowledged_from_its_page(page, tocsin, wait_until):
    integration = _integration(tocsin, "Prometheus")
    page.sign_in(tocsin.token)
    page.open(f"/?state=firing&integration={integration['id']}")
    assert page.find_all("[data-group-id]") == [], "the new integration has no group yet"
    page.mark()

    _post_alert(tocsin, integration, DISK_FULL)
    row = page.wait(lambda: page.find_all("[data-group-id]"), "the posted alert's group in the list")[0]
    assert "DiskFull" in row.text
    assert page.not_reloaded(), "the list updated without reloading the page"
    assert page.driver.current_url.endswith(f"/?state=firing&integration={integration['id']}")
    assert page.find("#f-state").get_attribute("value") == "firing", "the filters are kept"
    assert page.text('[data-state-count="firing"]') == "1"
    page.shot("alert-groups")

    row.find_element("css selector", "td.title a").click()
    page.wait(lambda: page.find_all("#group-state"), "the alert group page")
    assert page.text("#group-state") == "Firing"
    assert "Incident registered" in page.text("#timeline")
    page.shot("alert-group")
    page.mark()

    page.find('button[data-action="acknowledge"]').click()
    page.wait(lambda: page.text("#group-state") == "Acknowledged", "the state to show Acknowledged")
    page.wait(lambda: "Acknowledged by e2e" in page.text("#timeline"), "the timeline's acknowledge entry")
    assert page.not_reloaded(), "the action's result appeared without a reload"
    assert page.find_all('button[data-action="unacknowledge"]'), "the undo is offered next"
    page.shot("alert-group-acknowledged")
    assert _groups(tocsin, integration)[0]["state"] == "acknowledged", "the API sees the same"

    # The same list at phone width: still usable, the title still there.
    page.driver.set_window_size(390, 844)
    page.open("/")
    page.wait(lambda: page.find_all("[data-group-id]"), "the list at phone width")
    page.shot("alert-groups-phone")


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(page, tocsin, make_token, wait_until):
    integration = _integration(tocsin, "Prometheus")
    _post_alert(tocsin, integration, DISK_FULL)
    groups = wait_until(lambda: _groups(tocsin, integration), 20, lambda: "the alert group to be listed")
    group_id = groups[0]["id"]
    viewer = make_token("night-viewer", "viewer")

    page.sign_in(viewer)
    page.open(f"/alert-groups/{group_id}")
    page.wait(lambda: page.find_all("#group-state"), "the alert group page")
    assert page.find_all("button[data-action]") == [], "a viewer is offered no action"
    assert "night-viewer" in page.text("header")
    page.shot("alert-group-viewer")

    forged = page.driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const post = (headers, body) => fetch(arguments[0], {method: "POST", credentials: "same-origin",
            headers: Object.assign({"Content-Type": "application/x-www-form-urlencoded"}, headers), body: body})
          .then(r => r.status);
        Promise.all([
          post({"X-CSRF-Token": csrf, "X-Requested-With": "fetch"}, "csrf_token=" + encodeURIComponent(csrf)),
          post({}, ""),
        ]).then(done, e => done(String(e)));
        """,
        f"/alert-groups/{group_id}/acknowledge",
    )
    assert forged == [403, 400], "a viewer's POST is refused (403), and one without the CSRF token too (400)"
    assert _groups(tocsin, integration)[0]["state"] == "firing", "nothing changed"

    page.mark()
    status, _ = tocsin.api("POST", f"/api/v1/alert_groups/{group_id}/acknowledge")  # someone else acts
    assert status == 200
    page.wait(lambda: page.text("#group-state") == "Acknowledged", "the open page to show another's action")
    assert "Acknowledged by e2e" in page.text("#timeline") and page.not_reloaded()

    page.open(f"/integrations/{integration['id']}")
    page.wait(lambda: page.find_all("#templates"), "the integration page")
    assert page.find_all("#send-demo") == [] and page.find_all("form.templates button[type=submit]") == []
    page.shot("integration-viewer")


def test_an_admin_creates_an_integration_and_the_template_editor_previews(page, tocsin, wait_until):
    page.sign_in(tocsin.token)
    page.open("/integrations")
    page.find("#new-name").send_keys("Checkout <Prometheus>")
    page.find("form.inline-form button[type=submit]").click()
    page.wait(lambda: page.find_all("#integration-link"), "the new integration's page with its link")
    link = page.find("#integration-link").get_attribute("value")
    assert link.startswith(tocsin.base_url + "/integrations/v1/alertmanager/")
    assert page.text("h1") == "Checkout <Prometheus>", "user data is shown as text, not markup"
    page.shot("integration")

    page.mark()
    page.find("#send-demo").click()
    page.wait(lambda: "Demo alert sent" in page.text("#status"), "the demo alert's confirmation")
    assert page.not_reloaded()
    integration_id = page.driver.current_url.rstrip("/").split("/")[-1].split("?")[0]
    wait_until(lambda: _groups(tocsin, {"id": integration_id}), 20, lambda: "the demo alert's group")

    title = page.find('textarea[data-template="web.title"]')
    title.clear()
    title.send_keys("Status is {{ payload.status | upper }}")
    page.wait(lambda: page.text('[data-preview-for="web.title"]') == "Status is FIRING", "the title's live preview")
    broken = page.find('textarea[data-template="web.message"]')
    broken.clear()
    broken.send_keys("{{ payload.status ")
    page.wait(lambda: "Template Error" in page.text('[data-preview-for="web.message"]'), "the syntax error's preview")
    page.shot("template-editor")

    page.open("/integrations")
    page.wait(lambda: page.find_all("table"), "the integration list")
    page.shot("integrations")
    page.open("/insights")
    page.wait(lambda: page.find_all("svg.chart"), "the insights chart")
    assert page.text("#total-groups") == "1"
    page.shot("insights")
