"""Every request reaches the officers' Slack channel once, however it was logged.

Promises found in the indexed sample papers and a question by email (real Dovecot and SMTP on
loopback) are posted by the Slack process's periodic pass to the Web API stand-in, on SQLite and
on PostgreSQL; a refused post is tried again; a request asked in Slack is posted by its listener
and never again by the pass.
"""

from __future__ import annotations

import re
from datetime import timedelta

import paths
import pytest
from mailservers import PASSWORD, SmtpCapture, remove_dovecot, start_dovecot
from requests_support import STORE_KINDS
from slack_api_server import SlackApiServer
from slack_harness import BOT_TOKEN, OFFICERS_CHANNEL, SlackRig, fixture

from bot.channels.email.app import EmailAssistant
from bot.channels.email.clients import connect_imap, connect_smtp
from bot.channels.slack.announce import LISTENER_GRACE, announce_requests
from bot.channels.slack.cli import run_pass
from bot.channels.slack.client import web_client
from bot.channels.slack.jobs import MAX_ATTEMPTS
from bot.channels.slack.notify import SlackNotifier
from bot.promises.log import log_published_promises
from bot.requests.model import Asker, utc_now
from bot.requests.service import open_store

UNANSWERABLE = "What did the area committee decide about parking charges at the leisure centre?"


@pytest.fixture(scope="module")
def dovecot():
    server = start_dovecot()
    yield server
    remove_dovecot(server)


@pytest.fixture(scope="module")
def smtp_server():
    capture = SmtpCapture().start()
    yield capture
    capture.stop()


@pytest.fixture
def api():
    with SlackApiServer(token=BOT_TOKEN) as server:
        yield server


def settings_for(engine_settings, api, kind: str, **extra):
    """The Slack process's settings, on a SQLite or a fresh PostgreSQL request store."""
    database = ""
    if kind == "postgres":
        from pg_server import fresh_database

        database = fresh_database()
    values = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "CLERK_SLACK_API_URL": api.base_url,
        "CLERK_SLACK_OFFICERS_CHANNEL": OFFICERS_CHANNEL,
        "CLERK_DATABASE_URL": database,
        **extra,
    }
    return engine_settings.replaced(**values)


def slack_pass(settings) -> str:
    """One pass of `clerk slack`'s background loop, as a freshly started process runs it."""
    client = web_client(settings)
    with open_store(settings) as store:
        return run_pass(settings, store, SlackNotifier(client), client)


def officer_posts(api, request_id: int) -> list:
    """Posts to the officers' channel about this request (its message starts 'Request #N')."""
    head = re.compile(rf"Request #{request_id}\b")
    return [
        c
        for c in api.calls_to("chat.postMessage")
        if c.body["channel"] == OFFICERS_CHANNEL and head.match(c.body.get("text", ""))
    ]


def shown(call) -> str:
    return call.body["text"] + "\n" + str(call.body["blocks"])


def email_question(settings, answerer, dovecot, smtp_server) -> int:
    """A councillor emails a question the papers do not answer; the request number."""
    user = dovecot.new_user()
    mail = settings.replaced(
        CLERK_IMAP_HOST="127.0.0.1",
        CLERK_IMAP_PORT=dovecot.imap_port,
        CLERK_IMAP_USER=user,
        CLERK_IMAP_PASSWORD=PASSWORD,
        CLERK_IMAP_SECURITY="none",
        CLERK_SMTP_HOST="127.0.0.1",
        CLERK_SMTP_PORT=smtp_server.port,
        CLERK_SMTP_SECURITY="none",
        CLERK_EMAIL_ADDRESS="ask@clerk.example",
        CLERK_EMAIL_ALLOWED="@kent.gov.uk",
    )
    dovecot.append(user, (paths.FIXTURES / "email" / "unanswerable_question.eml").read_bytes())
    with open_store(mail) as store:
        assistant = EmailAssistant(
            mail,
            answerer,
            store,
            imap_factory=lambda: connect_imap(mail),
            smtp_factory=lambda: connect_smtp(mail),
        )
        assert assistant.run_once().acknowledged == 1
        [request] = [r for r in store.list() if r.askers[0].channel == "email"]
    return request.request_id


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_promise_and_an_emailed_question_reach_the_officers_channel_once(
    kind, engine_settings, answerer, api, dovecot, smtp_server
):
    settings = settings_for(engine_settings, api, kind)
    promises = log_published_promises(settings)  # what `clerk index` does after publishing
    emailed = email_question(settings, answerer, dovecot, smtp_server)
    assert promises and emailed not in promises

    slack_pass(settings)
    slack_pass(settings)  # the next minute, or a restarted process: nothing again

    for request_id in [*promises, emailed]:
        assert len(officer_posts(api, request_id)) == 1, request_id
    with open_store(settings) as store:
        assert all(store.get(r).announced_at for r in [*promises, emailed])
        bradford = next(r for r in map(store.get, promises) if "Further information" in r.question)
    promise = shown(officer_posts(api, bradford.request_id)[0])
    assert "a promise in the papers" in promise and "Promised in the papers" in promise
    assert "Area Committee" in promise and "Further information" in promise  # meeting, sentence
    assert "Asked by" not in promise
    question = shown(officer_posts(api, emailed)[0])
    assert "potholes" in question and "jane.smith@kent.gov.uk" in question  # asker, channel
    assert "email" in question and "Assign to me" in question


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_refused_post_stays_unannounced_and_the_next_pass_posts_it(kind, engine_settings, api):
    settings = settings_for(engine_settings, api, kind)
    with open_store(settings) as store:
        request_id = store.log(
            "Which car parks in Maidstone charge on Sundays?", Asker("cli", "carol")
        ).request.request_id
    api.refuse("chat.postMessage", "not_in_channel")

    slack_pass(settings)

    assert len(api.refused_calls("chat.postMessage")) == 1 and officer_posts(api, request_id) == []
    with open_store(settings) as store:
        assert store.get(request_id).announced_at is None

    slack_pass(settings)
    slack_pass(settings)

    assert len(officer_posts(api, request_id)) == 1
    with open_store(settings) as store:
        assert store.get(request_id).announced_at


def test_without_an_officers_channel_nothing_is_posted_or_marked(engine_settings, api):
    settings = settings_for(engine_settings, api, "sqlite", CLERK_SLACK_OFFICERS_CHANNEL="")
    with open_store(settings) as store:
        request_id = store.log("Who chairs the Cabinet?", Asker("cli", "carol")).request.request_id

    slack_pass(settings)

    assert api.calls_to("auth.test") and not api.calls_to("chat.postMessage")
    with open_store(settings) as store:
        assert store.get(request_id).announced_at is None
        assert store.claim_announcements()  # still waiting for a channel to be configured


def mention(text: str) -> dict:
    payload = fixture("app_mention.json")
    payload["event"]["text"] = f"<@UCLERKBOT> {text}"
    return payload


def test_a_question_asked_in_slack_is_posted_by_its_listener_and_never_again(
    engine_settings, answerer
):
    with open_store(engine_settings) as store, SlackRig(engine_settings, answerer, store) as rig:
        assert rig.event(mention(UNANSWERABLE)).status == 200
        rig.api.wait_for("chat.update", where=lambda c: c.body["channel"] == "C0GENERAL")
        [request] = store.list()
        assert len(officer_posts(rig.api, request.request_id)) == 1
        assert store.get(request.request_id).announced_at  # the listener recorded it

        later = utc_now() + LISTENER_GRACE + timedelta(minutes=1)
        client = web_client(rig.settings)
        assert announce_requests(rig.settings, store, client, now=later).posted == ()
        assert len(officer_posts(rig.api, request.request_id)) == 1


def test_when_the_listener_could_not_post_the_pass_takes_it_over_after_the_grace(
    engine_settings, answerer
):
    with open_store(engine_settings) as store, SlackRig(engine_settings, answerer, store) as rig:
        # Slack refuses every attempt the job makes to tell officers
        rig.api.refuse(
            "chat.postMessage", "not_in_channel", times=MAX_ATTEMPTS, channel=OFFICERS_CHANNEL
        )
        assert rig.event(mention(UNANSWERABLE)).status == 200
        rig.api.wait_for("chat.postEphemeral", timeout=60)  # the job gave up, and apologised
        [request] = store.list()
        assert officer_posts(rig.api, request.request_id) == []
        client = web_client(rig.settings)

        soon = announce_requests(rig.settings, store, client)  # the listener may still post it
        assert soon.posted == () and officer_posts(rig.api, request.request_id) == []

        later = utc_now() + LISTENER_GRACE + timedelta(minutes=1)
        assert announce_requests(rig.settings, store, client, now=later).posted == (
            request.request_id,
        )
        assert len(officer_posts(rig.api, request.request_id)) == 1
