"""Clerk in Slack: the Bolt app that answers councillors and lets officers handle requests.

Bolt checks each request's signature, routes it and acknowledges it. Work that takes longer than
an acknowledgement (searching the papers, logging a request, following an officer's answer
through) is first written to the durable job queue (`jobs.py`), and only then acknowledged; a few
worker threads (`workers.py`) do it. So nothing acknowledged is lost when the process dies: the
next process resumes it, skipping the steps already taken (the "working" message is updated, not
posted again; officers are told of a request once). A retried event (same event id, in HTTP or
Socket Mode) is acknowledged and not queued again. A global middleware first drops requests from
another workspace.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels.slack import render
from bot.channels.slack.guard import Officers, People
from bot.channels.slack.jobs import JOBS_FILE, Job, JobQueue, Steps
from bot.channels.slack.notify import SlackNotifier
from bot.channels.slack.retention import FEEDBACK_FILE
from bot.channels.slack.workers import Handler, Workers, scrub
from bot.errors import QuestionError, RequestError
from bot.requests import service as followup
from bot.requests.model import PENDING, Asker, InfoRequest, RequestFilter, RequestStore
from bot.settings import Settings
from indexer.errors import ClerkError

log = logging.getLogger(__name__)
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_LISTENER_ERRORS = (ClerkError, SlackApiError, OSError, KeyError, ValueError)

# Kinds of queued work (`ClerkSlack.handlers` names the method doing each)
MENTION, DIRECT_MESSAGE, COMMAND = "mention", "direct_message", "command"
HELPFUL, ASK_OFFICERS, ASSIGN, CLOSE = "helpful", "ask_officers", "assign", "close"
AFTER_ANSWER, AFTER_DECLINE, HOME = "after_answer", "after_decline", "home"


@dataclass(frozen=True)
class Place:
    """Where a conversation happens: channel, the thread to answer in, and who is speaking."""

    channel: str
    user: str
    thread_ts: str | None = None


class ClerkSlack:
    """The listeners, sharing the settings, the engine, the store and the Web API client."""

    def __init__(self, settings: Settings, answerer, store: RequestStore, client: WebClient):
        self.settings = settings
        self.answerer = answerer
        self.store = store
        self.client = client
        self.officers = Officers(settings, client)
        self.people = People(client)
        self.jobs = JobQueue(settings.home / JOBS_FILE)
        self.notifier = SlackNotifier(client)

    def handlers(self) -> dict[str, Handler]:
        """What each kind of queued work runs: (payload, steps) -> None."""
        return {
            MENTION: self.on_mention,
            DIRECT_MESSAGE: self.on_direct_message,
            COMMAND: self.on_command,
            HELPFUL: self.on_helpful,
            ASK_OFFICERS: self.on_ask_officers,
            ASSIGN: self.on_assign,
            CLOSE: self.on_close,
            AFTER_ANSWER: self.after_answer,
            AFTER_DECLINE: self.after_decline,
            HOME: self.on_home_opened,
        }

    # ---- middleware ------------------------------------------------------------------------

    def only_our_workspace(self, req: BoltRequest, next: Callable[[], BoltResponse]):  # noqa: A002
        team = self.settings.slack.team_id
        if team and req.context.team_id != team:
            log.warning("ignored a request from another workspace")
            return BoltResponse(status=200, body="")
        return next()

    # ---- taking work in: queued before it is acknowledged -----------------------------------

    def taker(self, kind: str) -> Callable[..., None]:
        """A listener that queues this kind of work, then acknowledges it."""

        def take(ack, body: dict, request: BoltRequest) -> None:
            self.queue(kind, body, request)
            ack()

        take.__name__ = take.__qualname__ = f"take_{kind}"  # Bolt names listeners in its logs
        return take

    def queue(self, kind: str, body: dict, request: BoltRequest | None = None) -> None:
        """Write the work down durably; a retried event (an id seen before) is not queued again."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if not self.jobs.put(kind, _work_payload(body), event_id):
            retry = request.headers.get("x-slack-retry-num", ["?"])[0] if request else "?"
            log.info("event %s already taken in (retry %s): not answered again", event_id, retry)

    # ---- questions -------------------------------------------------------------------------

    def on_mention(self, body: dict, steps: Steps) -> None:
        """Answer in the thread under the mention."""
        event = body["event"]
        question = _MENTION.sub(" ", event.get("text", "")).strip()
        place = Place(event["channel"], event["user"], event.get("thread_ts") or event["ts"])
        self.answer_at(question, place, place.thread_ts, steps)

    def on_direct_message(self, body: dict, steps: Steps) -> None:
        """Answer a DM beside it (or in its thread); officers' answers thread under the question."""
        event = body["event"]
        place = Place(event["channel"], event["user"], event.get("thread_ts") or event["ts"])
        self.answer_at(event.get("text", "").strip(), place, event.get("thread_ts"), steps)

    def ack_command(self, ack, body: dict, request: BoltRequest) -> None:
        text = (body.get("text") or "").strip()
        if not text:
            ack(
                response_type="ephemeral",
                text="Ask me about the committee papers, for example: `/clerk when was the "
                "library closure approved?`",
            )
            return
        self.queue(COMMAND, body, request)
        ack(
            response_type="ephemeral",
            text=f"{render.WORKING_TEXT} I will answer in our direct messages:\n"
            f"{render.blockquote(text, 500)}",
        )

    def on_command(self, body: dict, steps: Steps) -> None:
        """Answer a slash command in the asker's DM with the bot, so the answer stays."""
        question = (body.get("text") or "").strip()
        if not question:
            return
        user = body["user_id"]
        dm = self.client.conversations_open(users=user)["channel"]["id"]
        self.answer_at(question, Place(dm, user), None, steps, echo=True)

    def answer_at(
        self,
        question: str,
        place: Place,
        reply_thread: str | None,
        steps: Steps,
        echo: bool = False,
    ) -> None:
        """Show that we are working, answer (logging a request if unanswered), update in place.

        Resumed after a crash, it updates the "working" message posted before and tells officers
        of a new request only if they were not told."""
        working = render.working_message(question, echo=echo)
        ts = steps.once(
            "working_ts",
            lambda: self.client.chat_postMessage(
                channel=place.channel,
                thread_ts=reply_thread,
                text=working.text,
                blocks=working.blocks,
            )["ts"],
        )
        thread = place.thread_ts or ts  # where an officer's answer will go
        asker = Asker(
            "slack",
            place.user,
            self.people.name(place.user),
            {"channel": place.channel, "thread_ts": thread},
        )
        try:
            answer, logged = followup.handle_question(
                self.answerer, self.store, question, asker, resumed=steps.resumed
            )
        except QuestionError as exc:
            reply = render.SlackMessage(
                render.fit(str(exc), 500), [render.section(render.fit(str(exc), 500))]
            )
        else:
            if logged is not None and logged.created:
                request = logged.request
                steps.once("officers_told", lambda: self.post_to_officers(request))
            reply = render.answer_message(answer, logged.request if logged else None, echo=echo)
        self.client.chat_update(channel=place.channel, ts=ts, text=reply.text, blocks=reply.blocks)

    def post_to_officers(self, request: InfoRequest) -> None:
        channel = self.settings.slack.officers_channel
        if not channel:
            log.warning("request #%s logged; no officers' channel configured", request.request_id)
            return
        message = render.request_message(request)
        self.client.chat_postMessage(
            channel=channel,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        self.store.record_announcement(request.request_id)  # so no later pass posts it again

    # ---- councillors' buttons -------------------------------------------------------------

    def on_helpful(self, body: dict, steps: Steps) -> None:
        """Record that an answer helped (a line of JSON in the data directory)."""
        place = _action_place(body)
        steps.once("recorded", lambda: self._record_helpful(body, place))
        steps.once(
            "thanked",
            lambda: self.ephemeral(place, "Thank you, that helps us know Clerk is useful."),
        )

    def _record_helpful(self, body: dict, place: Place) -> None:
        record = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "user": place.user,
            "channel": place.channel,
            "message_ts": (body.get("container") or {}).get("message_ts"),
            "question": _question_from(body),
            "helpful": True,
        }
        path = Path(self.settings.home) / FEEDBACK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def on_ask_officers(self, body: dict, steps: Steps) -> None:
        """The councillor says the answer did not answer: log a request and tell officers."""
        place = _action_place(body)
        question = _question_from(body)
        answer = self.answerer.answer(question)
        nearest = answer.citations + answer.nearest
        asker = Asker(
            "slack",
            place.user,
            self.people.name(place.user),
            {"channel": place.channel, "thread_ts": place.thread_ts or ""},
        )
        committee = nearest[0].committee if nearest else None
        before = followup.logged_before(self.store, asker) if steps.resumed else None
        logged = before or self.store.log(question, asker, nearest=nearest, committee=committee)
        if logged.created:
            steps.once("officers_told", lambda: self.post_to_officers(logged.request))
        told = render.logged_message(logged.request, logged.created).text
        steps.once("told", lambda: self.ephemeral(place, told))

    # ---- officers' buttons and modals -----------------------------------------------------

    def officer_or_refuse(self, body: dict) -> bool:
        user = (body.get("user") or {}).get("id", "")
        if user in self.officers:
            return True
        log.info("refused a request action from a non-officer")
        place = _action_place(body)
        if place.channel:
            self.ephemeral(place, render.refusal_text())
        else:  # App Home: no channel to whisper in; the app's DM with them will do
            self.client.chat_postMessage(channel=user, text=render.refusal_text())
        return False

    def on_assign(self, body: dict, steps: Steps) -> None:
        self._officer_changes(body, steps, self.store.assign)

    def on_close(self, body: dict, steps: Steps) -> None:
        """An officer closes an answered request: finished, and purgeable in time."""
        self._officer_changes(body, steps, self.store.close)

    def _officer_changes(self, body: dict, steps: Steps, change) -> None:
        if not steps.once("officer", lambda: self.officer_or_refuse(body)):
            return
        officer = body["user"]["id"]
        request_id = int(body["actions"][0]["value"])
        try:
            steps.once("changed", lambda: change(request_id, officer).request_id)
        except RequestError as exc:
            self.ephemeral(_action_place(body), render.fit(str(exc), 500))
            return
        self.refresh_request_views(self.store.get(request_id), _message_ref(body), officer)

    def open_modal(self, ack, body: dict) -> None:
        """Answer/Decline: open the modal at once (trigger ids last 3 seconds), not queued."""
        ack()
        try:
            if not self.officer_or_refuse(body):
                return
            action = body["actions"][0]
            request = self.store.get(int(action["value"]))
            channel, ts = _message_ref(body)
            build = (
                render.answer_modal
                if action["action_id"] == render.ANSWER_OPEN
                else render.decline_modal
            )
            self.client.views_open(trigger_id=body["trigger_id"], view=build(request, channel, ts))
        except _LISTENER_ERRORS as exc:
            log.error("opening a modal failed: %s: %s", type(exc).__name__, scrub(str(exc)))
            self.apologise(body)

    def submit_answer(self, ack, body: dict, view: dict) -> None:
        """Record the answer before closing the modal, so a clash shows in the modal itself;
        queue the rest (publish, deliver, index) before acknowledging."""
        text = _input(view, "answer")
        self._submit(
            ack,
            body,
            "answer",
            lambda rid, officer: followup.record_answer(
                self.settings, self.store, rid, officer, text
            ),
            AFTER_ANSWER,
        )

    def submit_decline(self, ack, body: dict, view: dict) -> None:
        reason = _input(view, "reason")
        self._submit(
            ack,
            body,
            "reason",
            lambda rid, officer: self.store.decline(rid, officer, reason),
            AFTER_DECLINE,
        )

    def _submit(self, ack, body, block_id, change, after: str) -> None:
        officer = (body.get("user") or {}).get("id", "")
        if officer not in self.officers:
            ack(response_action="errors", errors={block_id: render.refusal_text()})
            return
        meta = json.loads((body.get("view") or {}).get("private_metadata") or "{}")
        try:
            change(int(meta["request_id"]), officer)
        except RequestError as exc:
            ack(response_action="errors", errors={block_id: str(exc)[:150]})
            return
        self.queue(after, body)
        ack()

    def after_answer(self, body: dict, steps: Steps) -> None:
        """Publish the answer as a source, deliver it to every asker, update officers' views.
        Each step may run again on resume: publishing replaces, a delivery is sent once."""
        view = body["view"]
        meta = json.loads(view.get("private_metadata") or "{}")
        officer = body["user"]["id"]
        request = self.store.get(int(meta["request_id"]))
        if request.answer is None or request.answered_by != officer:
            return  # the submission was refused; nothing changed
        done = followup.follow_through(
            self.settings,
            self.store,
            request,
            {"slack": self.notifier},
            self.answerer.searcher.embedder,
        )
        log.info(
            "request #%s: %d deliveries sent, %d to retry",
            request.request_id,
            len(done.deliveries.sent),
            len(done.deliveries.failed),
        )
        self.refresh_request_views(request, (meta.get("channel"), meta.get("ts")), officer)

    def after_decline(self, body: dict, steps: Steps) -> None:
        meta = json.loads(body["view"].get("private_metadata") or "{}")
        request = self.store.get(int(meta["request_id"]))
        self.refresh_request_views(
            request, (meta.get("channel"), meta.get("ts")), body["user"]["id"]
        )

    def refresh_request_views(self, request: InfoRequest, ref, officer: str) -> None:
        """Update the request's message in the officers' channel, and the officer's Home."""
        channel, ts = ref
        if channel and ts:
            message = render.request_message(request)
            self.client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            )
        self.publish_home(officer)

    # ---- App Home --------------------------------------------------------------------------

    def on_home_opened(self, body: dict, steps: Steps) -> None:
        event = body["event"]
        if event.get("tab") == "home":
            self.publish_home(event["user"])

    def publish_home(self, user: str) -> None:
        if user in self.officers:
            view = render.officer_home(self.store.list(RequestFilter(states=PENDING)))
        else:
            mine = [
                r
                for r in self.store.list(RequestFilter(asker=user))
                if any(a.channel == "slack" and a.user_id == user for a in r.askers)
            ]
            view = render.councillor_home(sorted(mine, key=lambda r: r.request_id, reverse=True))
        self.client.views_publish(user_id=user, view=view)

    # ---- talking back ----------------------------------------------------------------------

    def ephemeral(self, place: Place, text: str) -> None:
        self.client.chat_postEphemeral(
            channel=place.channel, user=place.user, text=text, thread_ts=place.thread_ts
        )

    def apologise(self, body: dict) -> None:
        """Tell the user we failed (the caller has logged what failed)."""
        place = _any_place(body)
        if place is None:
            return
        try:
            if place.channel:
                self.ephemeral(place, render.apology_text())
            elif place.user:
                self.client.chat_postMessage(channel=place.user, text=render.apology_text())
        except (SlackApiError, OSError) as exc:
            log.error("could not apologise either: %s", type(exc).__name__)

    def give_up(self, job: Job) -> None:
        """A queued job failed for good (the workers logged why): apologise to its user."""
        self.apologise(job.payload)


@dataclass(frozen=True)
class SlackBot:
    """The Bolt app (checks, routes, queues, acknowledges) and the workers doing the queued work:
    `bot.workers.start()` before serving, `bot.workers.stop()` after."""

    app: App
    workers: Workers


def build_bot(
    settings: Settings,
    answerer,
    store: RequestStore,
    client: WebClient,
    *,
    request_verification_enabled: bool = True,
) -> SlackBot:
    """The Bolt app and its workers; `client` is injected so tests can use a loopback Web API."""
    clerk = ClerkSlack(settings, answerer, store, client)
    app = App(
        client=client,
        signing_secret=settings.slack.signing_secret or "",
        # listeners run before the acknowledgement is sent: the work is queued by then
        process_before_response=True,
        request_verification_enabled=request_verification_enabled,
        name="clerk",
    )
    app.use(clerk.only_our_workspace)
    _register(app, clerk)

    @app.error
    def on_error(error: Exception, body: dict) -> None:
        log.error("Slack listener failed: %s: %s", type(error).__name__, scrub(str(error)))
        clerk.apologise(body)

    workers = Workers(
        clerk.jobs, clerk.handlers(), clerk.give_up, settings.slack.workers, settings.home
    )
    return SlackBot(app, workers)


def _ack(ack) -> None:
    ack()


def _register(app: App, clerk: ClerkSlack) -> None:
    take = clerk.taker
    app.event("app_mention")(take(MENTION))
    app.event("message", matchers=[_direct_message])(take(DIRECT_MESSAGE))
    app.event("message")(_ack)  # edits, joins, bot echoes: nothing to do
    app.command(re.compile(r"^/clerk"))(clerk.ack_command)
    app.action(render.HELPFUL)(take(HELPFUL))
    app.action(render.ASK_OFFICERS)(take(ASK_OFFICERS))
    app.action(render.ASSIGN)(take(ASSIGN))
    app.action(render.CLOSE)(take(CLOSE))
    app.action(re.compile(f"^({render.ANSWER_OPEN}|{render.DECLINE_OPEN})$"))(clerk.open_modal)
    app.view(render.ANSWER_VIEW)(clerk.submit_answer)
    app.view(render.DECLINE_VIEW)(clerk.submit_decline)
    app.event("app_home_opened")(take(HOME))


def _direct_message(event: dict) -> bool:
    """A person's new direct message: no edits, joins, channel messages, or bots (or us)."""
    return (
        event.get("channel_type") == "im"
        and not event.get("subtype")
        and not event.get("bot_id")
        and bool(event.get("user"))
    )


def _work_payload(body: dict) -> dict[str, Any]:
    """What queued work keeps of a request: an event and its id, or the command or interaction,
    without the (deprecated) verification token."""
    if body.get("type") == "event_callback":
        return {k: body[k] for k in ("type", "event_id", "team_id", "event") if k in body}
    return {k: v for k, v in body.items() if k != "token"}


def _question_from(body: dict) -> str:
    value = body["actions"][0].get("value") or "{}"
    return str(json.loads(value).get("q", "")).strip()


def _action_place(body: dict) -> Place:
    """Where a button was pressed: channel, user, and the thread of the message it sits on."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id") or ""
    thread = container.get("thread_ts") or message.get("thread_ts") or container.get("message_ts")
    return Place(channel, (body.get("user") or {}).get("id", ""), thread)


def _message_ref(body: dict) -> tuple[str | None, str | None]:
    container = body.get("container") or {}
    if container.get("type") != "message":
        return None, None
    return container.get("channel_id"), container.get("message_ts")


def _any_place(body: dict) -> Place | None:
    """Where to apologise, for any payload type."""
    if not isinstance(body, dict):
        return None
    if body.get("type") == "event_callback":
        event = body.get("event") or {}
        if event.get("user") and event.get("channel"):
            return Place(event["channel"], event["user"], event.get("thread_ts") or event.get("ts"))
        return None
    if body.get("command"):
        return Place(body.get("channel_id", ""), body.get("user_id", ""))
    if body.get("type") == "block_actions":
        return _action_place(body)
    if body.get("type") == "view_submission":
        return Place("", (body.get("user") or {}).get("id", ""))
    return None


def _input(view: dict, block_id: str) -> str:
    values = (view.get("state") or {}).get("values") or {}
    return ((values.get(block_id) or {}).get("text") or {}).get("value") or ""
