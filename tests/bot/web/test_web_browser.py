"""The officers' desk in a real browser: headless Chromium (Debian's) driven by Selenium.

An officer signs in, works the queue, answers a request (the asker's terminal inbox receives it),
and a form planted on another page is refused. Screenshots of each page go to build/screenshots/
(git-ignored), so a test run leaves the repository as it was; `scripts/screenshots` runs these
tests with REFRESH_SCREENSHOTS=1 to write them to docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import paths
import pytest
from requests_support import Clock
from web_support import OFFICER, OLD_QUESTION, PASSWORD, seed, serve_desk

from bot.requests.stores.sqlite import SqliteRequestStore
from bot.settings import Settings

README_SCREENSHOTS = paths.REPO / "docs" / "screenshots"  # committed: only scripts/screenshots
TEST_SCREENSHOTS = paths.REPO / "build" / "screenshots"  # git-ignored: every other run
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    """Headless Chromium; a clear failure (never a skip) when it is not installed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for tool in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: run scripts/test-services (Debian chromium packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def readme_screenshots_untouched():
    """A test run must not rewrite the committed screenshots (only scripts/screenshots does)."""
    before = _files(README_SCREENSHOTS)
    yield
    if screenshots_dir() != README_SCREENSHOTS:
        assert _files(README_SCREENSHOTS) == before, "docs/screenshots/ was written to"
        assert (TEST_SCREENSHOTS / "login.png").is_file()


def _files(folder) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.glob("*"))}


@pytest.fixture
def desk(tmp_path):
    settings = Settings.from_env({}, CLERK_HOME=tmp_path / "home")
    clock = Clock()
    store = SqliteRequestStore(settings.requests_db, clock=clock)
    seed(store, clock)
    server = serve_desk(settings, store)
    yield server, store, settings
    server.stop()
    store.close_store()


def screenshots_dir():
    """Where screenshots go: the README's folder only when asked to refresh it."""
    refresh = os.environ.get("REFRESH_SCREENSHOTS") == "1"
    return README_SCREENSHOTS if refresh else TEST_SCREENSHOTS


def screenshot(driver, name: str) -> None:
    """The whole page, as a PNG (for the README, when refreshing it)."""
    folder = screenshots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, min(max(int(height) + 160, 500), 2000))  # + the window's frame
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(1200, 900)


def wait_until(driver, condition) -> None:
    """Wait for the next page: a click returns before the browser has loaded it."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(condition)


def sign_in(driver, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base_url + "/queue")
    assert "/login" in driver.current_url  # the queue is for officers only
    assert OLD_QUESTION not in driver.page_source
    screenshot(driver, "login")
    driver.find_element(By.NAME, "name").send_keys(OFFICER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_until(driver, lambda d: "/login" not in d.current_url)


def test_an_officer_signs_in_works_the_queue_and_answers_in_chromium(browser, desk):
    from selenium.webdriver.common.by import By

    server, store, settings = desk
    sign_in(browser, server.url)
    assert browser.current_url.endswith("/queue")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    assert len(rows) == 3 and OLD_QUESTION in rows[0].text and "overdue" in rows[0].text
    screenshot(browser, "queue")

    browser.find_element(By.NAME, "committee").send_keys("County Council")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait_until(browser, lambda d: "committee=" in d.current_url)
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")) == 1
    assert "<script>" in browser.find_element(By.CSS_SELECTOR, "table.queue").text  # as text

    browser.get(server.url + "/requests/1")
    passage = browser.find_element(By.CSS_SELECTOR, "ol.passages li").text
    assert "Highways maintenance is forecast to overspend." in passage and "page 3" in passage
    screenshot(browser, "request")

    browser.get(server.url + "/queue?q=chairs")
    browser.find_element(By.LINK_TEXT, "#3").click()
    wait_until(browser, lambda d: d.current_url.endswith("/requests/3"))
    assert "Who chairs the Cabinet?" in browser.find_element(By.CSS_SELECTOR, "blockquote").text
    answer = "The Leader of the Council chairs the Cabinet (Constitution, Part 3)."
    browser.find_element(By.NAME, "answer").send_keys(answer)
    browser.find_element(By.CSS_SELECTOR, "form.answer button").click()
    flash = browser.find_element(By.CSS_SELECTOR, "p.flash.ok").text
    assert "Request #3 is answered. Delivered to 1 asker(s)." in flash
    screenshot(browser, "request-answered")

    inbox = (settings.home / "inbox" / "carol.txt").read_text(encoding="utf-8")
    assert f"answered by {OFFICER}" in inbox and answer in inbox  # the asker's channel got it
    assert store.get(3).state == "answered"

    browser.find_element(By.LINK_TEXT, "Overview").click()
    wait_until(browser, lambda d: d.current_url.endswith("/overview"))
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert "answered this week" in browser.page_source
    screenshot(browser, "overview")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


def test_a_form_planted_on_another_page_is_refused_in_chromium(browser, desk, tmp_path):
    """The officer is signed in and their browser sends the cookie; the token stops it."""
    from selenium.webdriver.common.by import By

    server, store, settings = desk
    sign_in(browser, server.url)
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "index.html").write_text(
        f'<form method="post" action="{server.url}/requests/1/decline">'
        '<input type="hidden" name="reason" value="forged">'
        '<input type="hidden" name="csrf_token" value="guessed">'
        '<button id="go" type="submit">Win a prize</button></form>'
    )
    other = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(planted)))
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{other.server_address[1]}/index.html")
        browser.find_element(By.ID, "go").click()
        wait_until(browser, lambda d: "/requests/1/decline" in d.current_url)
        assert "did not come from the desk" in browser.page_source
        screenshot(browser, "forged-post-refused")
    finally:
        other.shutdown()
        other.server_close()
    assert store.get(1).state == "open" and store.get(1).reason is None
    browser.get(server.url + "/requests/1")
    assert "forged" not in browser.page_source
