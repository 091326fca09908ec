"""The officers' desk over real HTTP on 127.0.0.1: sign-in, the queue, a request, the overview,
the export, and the guards (CSRF, rate limiting, the trusted proxy header, escaping)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from requests_support import CAROL, Clock
from web_support import (
    OFFICER,
    OLD_QUESTION,
    PAPER_URL,
    PASSWORD,
    DeskClient,
    seed,
    serve_desk,
)

from bot.cli.main import main
from bot.requests.model import utc_now
from bot.requests.stores.sqlite import SqliteRequestStore
from bot.settings import Settings
from bot.web.accounts import OfficerAccounts


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def make_desk(home):
    """Start the desk with these settings over a seeded store; stopped after the test."""
    started = []

    def start(**env):
        settings = Settings.from_env({}, CLERK_HOME=home, **env)
        clock = Clock()
        store = SqliteRequestStore(settings.requests_db, clock=clock)
        if not store.list():
            seed(store, clock)
        clock.now = utc_now()
        server = serve_desk(settings, store)
        started.append((server, store))
        return server, store

    yield start
    for server, store in started:
        server.stop()
        store.close_store()


@pytest.fixture
def desk(make_desk):
    server, store = make_desk()
    return server, store


@pytest.fixture
def officer(desk) -> DeskClient:
    client = DeskClient(desk[0].url)
    assert client.sign_in().status == 302
    return client


def flashes(page) -> list[str]:
    return re.findall(r'<p class="flash[^"]*" role="status">([^<]*)</p>', page.body)


def queue_ids(page) -> list[int]:
    return [int(n) for n in re.findall(r'<td><a href="/requests/(\d+)">', page.body)]


# ---- nobody but an officer -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/queue", "/requests/1", "/overview", "/export.csv", "/"])
def test_without_signing_in_no_question_or_asker_is_shown(desk, path):
    page = DeskClient(desk[0].url).get(path)
    assert page.status == 302 and page.location.startswith("/login")
    signed_out = DeskClient(desk[0].url).get(path, follow=True)
    assert "Sign in" in signed_out.body
    for secret in (OLD_QUESTION, "Cllr Alice", "U0ALICE", "libraries"):
        assert secret not in signed_out.body


def test_a_form_post_without_signing_in_changes_nothing(desk):
    server, store = desk
    client = DeskClient(server.url)
    token = client.get("/login").csrf()  # a real token, but no officer behind it
    page = client.post("/requests/1/decline", {"csrf_token": token, "reason": "no"})
    assert page.status == 403 and store.get(1).state == "open"


def test_sign_in_with_a_local_account_and_out_again(desk):
    client = DeskClient(desk[0].url)
    login = client.get("/login?next=/requests/2")
    page = client.post(
        "/login",
        {"csrf_token": login.csrf(), "name": OFFICER, "password": PASSWORD, "next": "/requests/2"},
    )
    assert page.status == 302 and page.location == "/requests/2"
    assert "How many libraries" in client.get("/requests/2").body
    queue = client.get("/queue")
    assert client.post("/logout", {"csrf_token": queue.csrf()}).status == 302
    assert client.get("/queue").status == 302  # signed out


def test_sign_in_never_redirects_to_another_site(desk):
    client = DeskClient(desk[0].url)
    token = client.get("/login").csrf()
    page = client.post(
        "/login",
        {"csrf_token": token, "name": OFFICER, "password": PASSWORD, "next": "//evil.example/x"},
    )
    assert page.status == 302 and page.location == "/queue"


def test_wrong_passwords_are_refused_then_sign_in_is_rate_limited(make_desk):
    server, _ = make_desk(CLERK_WEB_LOGIN_ATTEMPTS=3)
    client = DeskClient(server.url)
    for _ in range(3):
        page = client.sign_in(password="wrong password!")  # noqa: S106
        assert page.status == 401 and "do not match" in page.body
    assert client.sign_in(name="nobody", password="x").status == 429  # noqa: S106 - same address
    page = client.sign_in()  # even the right password waits now
    assert page.status == 429 and "Too many failed sign-ins" in page.body
    assert client.get("/queue").status == 302


def test_session_cookie_is_httponly_samesite_and_secure_only_over_https(make_desk):
    server, _ = make_desk(
        CLERK_WEB_TRUSTED_HEADER="X-Remote-User", CLERK_WEB_TRUSTED_PROXIES="127.0.0.1"
    )
    (cookie,) = DeskClient(server.url).sign_in().cookies
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    proxied = DeskClient(server.url, {"X-Forwarded-Proto": "https"})
    (cookie,) = proxied.get("/login").cookies
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_pages_are_not_cached_framed_or_scripted(officer):
    page = officer.get("/queue")
    assert page.headers["cache-control"] == "no-store"
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script" not in page.body


# ---- the single-sign-on proxy ----------------------------------------------------------------


def test_trusted_header_signs_in_only_from_the_configured_proxy(make_desk):
    server, _ = make_desk(
        CLERK_WEB_TRUSTED_HEADER="X-Remote-User", CLERK_WEB_TRUSTED_PROXIES="127.0.0.0/8"
    )
    page = DeskClient(server.url, {"X-Remote-User": "jo.bloggs"}).get("/queue")
    assert page.status == 200 and "jo.bloggs" in page.body and OLD_QUESTION in page.body


def test_trusted_header_from_any_other_address_is_ignored(make_desk):
    server, _ = make_desk(
        CLERK_WEB_TRUSTED_HEADER="X-Remote-User", CLERK_WEB_TRUSTED_PROXIES="192.0.2.10"
    )
    page = DeskClient(server.url, {"X-Remote-User": "jo.bloggs"}).get("/queue")
    assert page.status == 302 and page.location.startswith("/login")


def test_proxy_users_can_be_limited_to_named_officers(make_desk):
    server, _ = make_desk(
        CLERK_WEB_TRUSTED_HEADER="X-Remote-User",
        CLERK_WEB_TRUSTED_PROXIES="127.0.0.1",
        CLERK_WEB_SSO_OFFICERS="jo.bloggs",
    )
    assert DeskClient(server.url, {"X-Remote-User": "jo.bloggs"}).get("/queue").status == 200
    assert DeskClient(server.url, {"X-Remote-User": "councillor"}).get("/queue").status == 302


def test_a_trusted_header_without_proxy_addresses_is_a_configuration_error(home):
    from bot.web.app import create_app
    from indexer.errors import ConfigError

    settings = Settings.from_env({}, CLERK_HOME=home, CLERK_WEB_TRUSTED_HEADER="X-Remote-User")
    with pytest.raises(ConfigError, match="CLERK_WEB_TRUSTED_PROXIES"):
        create_app(settings, store=None)


# ---- forms need the session's token ----------------------------------------------------------


def test_a_forged_form_post_is_rejected_and_changes_nothing(desk, officer, home):
    server, store = desk
    forged = {"answer": "Forged answer", "csrf_token": "not-the-token"}
    assert officer.post("/requests/3/answer", forged).status == 403
    assert officer.post("/requests/3/answer", {"answer": "No token at all"}).status == 403
    other = DeskClient(server.url)  # a real token from someone else's session
    other.sign_in()
    stolen = other.get("/queue").csrf()
    page = officer.post("/requests/3/answer", {"answer": "x", "csrf_token": stolen})
    assert page.status == 403 and "expired" in page.body
    assert store.get(3).state == "open" and store.get(3).answer is None
    assert not (home / "inbox").exists()


# ---- the queue -------------------------------------------------------------------------------


def test_queue_lists_waiting_requests_overdue_first_with_age_channel_and_committee(officer):
    page = officer.get("/queue")
    assert page.status == 200 and queue_ids(page) == [1, 2, 3]
    first_row = page.body.split('<tr class="overdue">')[1].split("</tr>")[0]
    assert "overdue" in page.body and OLD_QUESTION in first_row
    assert "Cabinet" in first_row and "slack" in first_row
    assert re.search(r'<td class="num">(2[0-9]) d</td>', first_row)  # about 22 working days


def test_queue_filters_and_search(officer, desk):
    _, store = desk
    store.assign(3, OFFICER)
    store.answer(2, "someone", "Four.")
    assert queue_ids(officer.get("/queue")) == [1, 3]
    assert queue_ids(officer.get("/queue?state=all")) == [1, 3, 2]  # waiting before answered
    assert queue_ids(officer.get("/queue?state=answered")) == [2]
    assert queue_ids(officer.get("/queue?committee=Cabinet")) == [1, 3]
    assert queue_ids(officer.get("/queue?overdue=1")) == [1]
    assert queue_ids(officer.get("/queue?mine=1")) == [3]
    assert queue_ids(officer.get("/queue?q=dover+bypass")) == [1]
    assert queue_ids(officer.get("/queue?q=Cllr+Alice")) == [1]  # askers are searched
    assert queue_ids(officer.get("/queue?state=all&q=%233")) == [3]
    assert queue_ids(officer.get("/queue?state=nonsense")) == [1, 3]  # falls back to waiting


def test_queue_is_paginated(make_desk):
    server, _ = make_desk(CLERK_WEB_PAGE_SIZE=2)
    client = DeskClient(server.url)
    client.sign_in()
    first = client.get("/queue")
    assert queue_ids(first) == [1, 2] and "page 1 of 2" in first.body
    assert 'href="/queue?page=2"' in first.body
    assert queue_ids(client.get("/queue?page=2")) == [3]
    assert queue_ids(client.get("/queue?page=99")) == [3]  # past the end: the last page


def test_what_people_typed_is_escaped_everywhere(officer):
    for path in ("/queue", "/requests/2", "/overview"):
        page = officer.get(path)
        assert "<script>" not in page.body, path
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in officer.get("/requests/2").body


def test_export_is_the_filtered_queue_as_the_cli_writes_it(officer):
    page = officer.get("/export.csv?committee=Cabinet")
    assert page.headers["content-type"].startswith("text/csv")
    assert "attachment" in page.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(page.body)))
    assert [r["request_id"] for r in rows] == ["1", "3"]
    assert rows[0]["askers"] == "slack:U0ALICE (Cllr Alice)"


# ---- one request -----------------------------------------------------------------------------


def test_request_page_shows_question_askers_passages_and_history(officer):
    page = officer.get("/requests/1")
    assert page.status == 200 and OLD_QUESTION in page.body
    assert "Cllr Alice" in page.body and "U0ALICE" in page.body
    assert (
        f'<a href="{PAPER_URL}" rel="noopener noreferrer">Revenue and Capital Budget Monitoring'
        in page.body
    )  # the nearest passage, linked to the cited page
    assert "Highways maintenance is forecast to overspend." in page.body
    assert "page 3" in page.body and "logged" in page.body  # the audit history
    assert officer.get("/requests/99").status == 404


def test_answering_on_the_desk_reaches_the_asker_and_is_published(desk, officer, home):
    _, store = desk
    token = officer.get("/requests/3").csrf()
    page = officer.post(
        "/requests/3/answer",
        {"csrf_token": token, "answer": "The Leader of the Council chairs the Cabinet."},
        follow=True,
    )
    assert "Request #3 is answered. Delivered to 1 asker(s)." in flashes(page)[0]
    inbox = (home / "inbox" / "carol.txt").read_text(encoding="utf-8")
    assert "Your request #3 was answered by officer.ann" in inbox
    assert "The Leader of the Council chairs the Cabinet." in inbox
    (response,) = (home / "responses" / "request-3").glob("*.txt")
    assert "The Leader of the Council chairs the Cabinet." in response.read_text()
    assert store.get(3).answered_by == OFFICER
    assert "answered" in page.body and "sent" in page.body  # state and delivery shown


def test_an_answer_for_a_slack_asker_waits_for_the_slack_service(desk, officer):
    _, store = desk
    token = officer.get("/requests/1").csrf()
    page = officer.post("/requests/1/answer", {"csrf_token": token, "answer": "£42m."}, follow=True)
    assert "1 delivery(ies) will be made by their channel" in flashes(page)[0]
    assert [d.state for d in store.deliveries(1)] == ["pending"]


def test_assign_decline_reopen_duplicate_and_close_through_the_forms(desk, officer):
    _, store = desk

    def act(request_id, action, **form):
        token = officer.get(f"/requests/{request_id}").csrf()
        return officer.post(
            f"/requests/{request_id}/{action}", {"csrf_token": token, **form}, follow=True
        )

    assert "assigned to officer.bob" in flashes(act(1, "assign", to="officer.bob"))[0]
    assert "declined" in flashes(act(1, "decline", reason="Commercially confidential"))[0]
    page = officer.get("/requests/1")
    assert "Commercially confidential" in page.body and "Reopen" in page.body
    assert "Send answer" not in page.body  # a declined request offers only reopening
    assert "open again" in flashes(act(1, "reopen", reason="new information"))[0]
    assert "the reason for declining is empty" in flashes(act(1, "decline", reason=" "))[0]
    assert "duplicate of #3" in flashes(act(1, "duplicate", of="#3"))[0]
    folded = officer.get("/requests/3").body
    assert "Cllr Alice" in folded and 'asked as <a href="/requests/1">#1</a>' in folded
    act(3, "answer", answer="The Leader.")
    assert {d.asker.user_id for d in store.deliveries(3)} == {"carol", "U0ALICE"}
    assert "closed" in flashes(act(3, "close"))[0]
    history = officer.get("/requests/1").body
    for action in ("assigned", "declined", "reopened", "marked duplicate"):
        assert f"<td>{action}</td>" in history


# ---- the overview ----------------------------------------------------------------------------


def test_overview_counts_charts_and_index_freshness(desk, officer, home):
    _, store = desk
    store.answer(3, "someone", "The Leader.")
    home.joinpath("nightly-status").write_text("1\n")
    page = officer.get("/overview")
    tiles = re.findall(r'<span class="big">([^<]+)</span> ([^<]+)</div>', page.body)
    assert tiles[:3] == [
        ("2", "open or assigned"),
        ("1", "overdue (over 10 working days)"),
        ("1", "answered this week"),
    ]
    assert tiles[3] == ("0", "median working days to answer")
    svg = page.body[page.body.index("<svg") :]
    assert "<title>Cabinet</title>" in svg and "County Council" in svg
    assert "no index published" in page.body  # nothing indexed in this data directory
    assert "some papers failed" in page.body or "no index" in page.body


def test_overview_shows_the_index_build_and_newest_meeting(engine_settings, embedder):
    store = SqliteRequestStore(engine_settings.requests_db)
    server = serve_desk(engine_settings, store)
    try:
        client = DeskClient(server.url)
        client.sign_in()
        page = client.get("/overview")
        assert "Newest meeting</dt><dd>2025-" in page.body and "Documents</dt><dd>" in page.body
    finally:
        server.stop()
        store.close_store()


def test_an_answer_on_the_desk_is_indexed_as_a_cited_source(engine_settings, embedder):
    store = SqliteRequestStore(engine_settings.requests_db)
    request_id = store.log("When does the Sittingbourne pool reopen?", CAROL).request.request_id
    server = serve_desk(engine_settings, store, embedder=embedder)
    try:
        client = DeskClient(server.url)
        client.sign_in()
        token = client.get(f"/requests/{request_id}").csrf()
        page = client.post(
            f"/requests/{request_id}/answer",
            {"csrf_token": token, "answer": "The Sittingbourne pool reopens on 1 September 2025."},
            follow=True,
        )
        assert "It is now a cited source." in flashes(page)[0]
    finally:
        server.stop()
        store.close_store()
    from bot.engine.answer import Answerer

    later = Answerer.from_settings(engine_settings, embedder).answer(
        "When does the swimming pool in Sittingbourne reopen?"
    )
    assert later.answered and later.citations[0].committee == "Officer responses"


# ---- accounts --------------------------------------------------------------------------------


def test_add_officer_stores_a_scrypt_hash_never_the_password(home, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(home))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long pass phrase\n"))
    assert main(["web", "add-officer", "jo.bloggs", "--password-stdin"]) == 0
    assert "Officer jo.bloggs added." in capsys.readouterr().out
    text = (home / "officers.json").read_text()
    assert "a long pass phrase" not in text and '"hash": "scrypt$' in text
    assert (home / "officers.json").stat().st_mode & 0o077 == 0
    accounts = OfficerAccounts(home / "officers.json")
    assert accounts.verify("jo.bloggs", "a long pass phrase")
    assert not accounts.verify("jo.bloggs", "a long pass phrasE")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["web", "add-officer", "jo.bloggs", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
