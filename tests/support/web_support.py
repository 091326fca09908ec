# ruff: noqa: S310 - requests go only to the desk this module serves on 127.0.0.1
"""The officers' desk served for real on 127.0.0.1 port 0, and a small cookie-keeping client."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from datetime import timedelta
from urllib.parse import urlencode

from requests_support import ALICE, BOB, CAROL, Clock, citation

from bot.channels import build_notifiers
from bot.requests.model import utc_now
from bot.settings import Settings
from bot.web.accounts import OfficerAccounts
from bot.web.app import create_app
from bot.web.serve import DeskServer

OFFICER, PASSWORD = "officer.ann", "correct horse battery"  # noqa: S105 - a test account
OLD_QUESTION = "What is the Dover bypass cost?"
PAPER_URL = "https://democracy.kent.gov.uk/documents/s1/report.pdf#page=3"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def seed(store, clock: Clock) -> None:
    """An overdue request from a month ago (Cabinet, Slack), two from today (email, terminal)."""
    clock.now = utc_now() - timedelta(days=30)
    store.log(OLD_QUESTION, ALICE, [replace(citation(), url=PAPER_URL)], committee="Cabinet")
    clock.now = utc_now()
    store.log(
        'How many libraries <script>alert("x")</script> closed?', BOB, committee="County Council"
    )
    store.log("Who chairs the Cabinet?", CAROL, committee="Cabinet")
    clock.now = utc_now()


def serve_desk(settings: Settings, store, embedder=None, officer: bool = True) -> DeskServer:
    """The real desk with every configured channel's notifier, serving in a thread."""
    if officer:
        OfficerAccounts.from_settings(settings).add(OFFICER, PASSWORD)
    app = create_app(settings, store, build_notifiers(settings), embedder)
    return DeskServer(app, "127.0.0.1", 0).start()


@dataclass(frozen=True)
class Page:
    status: int
    body: str
    headers: dict[str, str]
    cookies: list[str]

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def csrf(self) -> str:
        found = CSRF.search(self.body)
        assert found, "the page has no form token"
        return found.group(1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class DeskClient:
    """A browser without a browser: keeps cookies, does not follow redirects unless asked."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None):
        self.base = base_url
        self.headers = headers or {}
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def get(self, path: str, follow: bool = False) -> Page:
        page = self._send(urllib.request.Request(self.base + path, headers=self.headers))
        return self.follow(page) if follow else page

    def post(self, path: str, form: dict[str, str], follow: bool = False) -> Page:
        request = urllib.request.Request(
            self.base + path, data=urlencode(form).encode(), headers=self.headers, method="POST"
        )
        page = self._send(request)
        return self.follow(page) if follow else page

    def follow(self, page: Page) -> Page:
        while page.status in (301, 302, 303):
            page = self.get(page.location.removeprefix(self.base))
        return page

    def sign_in(self, name: str = OFFICER, password: str = PASSWORD) -> Page:
        token = self.get("/login").csrf()
        return self.post("/login", {"csrf_token": token, "name": name, "password": password})

    def _send(self, request: urllib.request.Request) -> Page:
        try:
            response = self.opener.open(request, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        with response:
            body = response.read().decode("utf-8")
            headers = {k.lower(): v for k, v in response.headers.items()}
            cookies = response.headers.get_all("Set-Cookie") or []
            return Page(response.status, body, headers, cookies)
