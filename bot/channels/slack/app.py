"""Clerk in Slack: the Bolt app that answers councillors and lets officers handle requests.

Every listener acknowledges at once; retrieval, request logging and delivery run in Bolt lazy
listeners (a thread pool on a long-running server). Two global middlewares run first: requests
from another workspace are dropped, and an event id already taken in (a Slack retry, in HTTP or
Socket Mode) is acknowledged and not answered again.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels.slack import render
from bot.channels.slack.guard import Officers, People, SeenEvents
from bot.channels.slack.notify import SlackNotifier
from bot.channels.slack.retention import FEEDBACK_FILE
from bot.errors import QuestionError, RequestError
from bot.requests import service as followup
from bot.requests.model import PENDING, Asker, InfoRequest, RequestFilter, RequestStore
from bot.settings import Settings
from indexer.errors import ClerkError

log = logging.getLogger(__name__)
SEEN_EVENTS_FILE = "slack-events.sqlite3"  # event ids answered, kept across restarts
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_LISTENER_ERRORS = (ClerkError, SlackApiError, OSError, KeyError, ValueError)


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
        self.seen = SeenEvents(settings.home / SEEN_EVENTS_FILE)
        self.notifier = SlackNotifier(client)

    # ---- middleware ------------------------------------------------------------------------

    def only_our_workspace(self, req: BoltRequest, next: Callable[[], BoltResponse]):  # noqa: A002
        team = self.settings.slack.team_id
        if team and req.context.team_id != team:
            log.warning("ignored a request from another workspace")
            return BoltResponse(status=200, body="")
        return next()

    def once_per_event(self, req: BoltRequest, body: dict, next: Callable[[], BoltResponse]):  # noqa: A002
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        # a lazy run (FaaS re-invocation) carries the same event id: let it through
        if event_id and not req.lazy_only and not self.seen.first_time(event_id):
            retry = req.headers.get("x-slack-retry-num", ["?"])[0]
            log.info("event %s already taken in (retry %s): not answered again", event_id, retry)
            return BoltResponse(status=200, body="")
        return next()

    # ---- questions -------------------------------------------------------------------------

    def on_mention(self, event: dict) -> None:
        """Answer in the thread under the mention."""
        question = _MENTION.sub(" ", event.get("text", "")).strip()
        place = Place(event["channel"], event["user"], event.get("thread_ts") or event["ts"])
        self.answer_at(question, place, reply_thread=place.thread_ts)

    def on_direct_message(self, event: dict) -> None:
        """Answer a DM beside it (or in its thread); officers' answers thread under the question."""
        place = Place(event["channel"], event["user"], event.get("thread_ts") or event["ts"])
        self.answer_at(event.get("text", "").strip(), place, reply_thread=event.get("thread_ts"))

    def ack_command(self, ack, command: dict) -> None:
        text = (command.get("text") or "").strip()
        if not text:
            ack(
                response_type="ephemeral",
                text="Ask me about the committee papers, for example: `/clerk when was the "
                "library closure approved?`",
            )
            return
        ack(
            response_type="ephemeral",
            text=f"{render.WORKING_TEXT} I will answer in our direct messages:\n"
            f"{render.blockquote(text, 500)}",
        )

    def on_command(self, command: dict) -> None:
        """Answer a slash command in the asker's DM with the bot, so the answer stays."""
        question = (command.get("text") or "").strip()
        if not question:
            return
        user = command["user_id"]
        dm = self.client.conversations_open(users=user)["channel"]["id"]
        self.answer_at(question, Place(dm, user), reply_thread=None, echo=True)

    def answer_at(
        self, question: str, place: Place, reply_thread: str | None, echo: bool = False
    ) -> None:
        """Show that we are working, answer (logging a request if unanswered), update in place."""
        working = render.working_message(question, echo=echo)
        posted = self.client.chat_postMessage(
            channel=place.channel, thread_ts=reply_thread, text=working.text, blocks=working.blocks
        )
        ts = posted["ts"]
        thread = place.thread_ts or ts  # where an officer's answer will go
        asker = Asker(
            "slack",
            place.user,
            self.people.name(place.user),
            {"channel": place.channel, "thread_ts": thread},
        )
        try:
            answer, logged = followup.handle_question(self.answerer, self.store, question, asker)
        except QuestionError as exc:
            reply = render.SlackMessage(
                render.fit(str(exc), 500), [render.section(render.fit(str(exc), 500))]
            )
        else:
            if logged is not None and logged.created:
                self.post_to_officers(logged.request)
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

    def on_helpful(self, body: dict) -> None:
        """Record that an answer helped (a line of JSON in the data directory)."""
        place = _action_place(body)
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
        self.ephemeral(place, "Thank you, that helps us know Clerk is useful.")

    def on_ask_officers(self, body: dict) -> None:
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
        logged = self.store.log(question, asker, nearest=nearest, committee=committee)
        if logged.created:
            self.post_to_officers(logged.request)
        self.ephemeral(place, render.logged_message(logged.request, logged.created).text)

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

    def on_assign(self, body: dict) -> None:
        if not self.officer_or_refuse(body):
            return
        officer = body["user"]["id"]
        request_id = int(body["actions"][0]["value"])
        try:
            request = self.store.assign(request_id, officer)
        except RequestError as exc:
            self.ephemeral(_action_place(body), render.fit(str(exc), 500))
            return
        self.refresh_request_views(request, _message_ref(body), officer)

    def on_close(self, body: dict) -> None:
        """An officer closes an answered request: finished, and purgeable in time."""
        if not self.officer_or_refuse(body):
            return
        officer = body["user"]["id"]
        try:
            request = self.store.close(int(body["actions"][0]["value"]), officer)
        except RequestError as exc:
            self.ephemeral(_action_place(body), render.fit(str(exc), 500))
            return
        self.refresh_request_views(request, _message_ref(body), officer)

    def open_modal(self, ack, body: dict) -> None:
        """Answer/Decline: open the modal at once (trigger ids last 3 seconds)."""
        ack()
        if not self.officer_or_refuse(body):
            return
        action = body["actions"][0]
        request = self.store.get(int(action["value"]))
        channel, ts = _message_ref(body)
        build = (
            render.answer_modal
            if action["action_id"] == render.ANSWER_OPEN
            else (render.decline_modal)
        )
        self.client.views_open(trigger_id=body["trigger_id"], view=build(request, channel, ts))

    def submit_answer(self, ack, body: dict, view: dict) -> None:
        """Record the answer before closing the modal, so a clash shows in the modal itself."""
        text = _input(view, "answer")
        self._submit(
            ack,
            body,
            view,
            "answer",
            lambda rid, officer: followup.record_answer(
                self.settings, self.store, rid, officer, text
            ),
        )

    def submit_decline(self, ack, body: dict, view: dict) -> None:
        reason = _input(view, "reason")
        self._submit(
            ack, body, view, "reason", lambda rid, officer: self.store.decline(rid, officer, reason)
        )

    def _submit(self, ack, body, view, block_id, change) -> None:
        officer = (body.get("user") or {}).get("id", "")
        if officer not in self.officers:
            ack(response_action="errors", errors={block_id: render.refusal_text()})
            return
        meta = json.loads(view.get("private_metadata") or "{}")
        try:
            change(int(meta["request_id"]), officer)
        except RequestError as exc:
            ack(response_action="errors", errors={block_id: str(exc)[:150]})
            return
        ack()

    def after_answer(self, body: dict, view: dict) -> None:
        """Publish the answer as a source, deliver it to every asker, update officers' views."""
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

    def after_decline(self, body: dict, view: dict) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
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

    def on_home_opened(self, event: dict) -> None:
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

    def apologise(self, body: dict, error: BaseException) -> None:
        """Log what failed (never tokens or payloads) and tell the user we failed."""
        log.error("Slack handler failed: %s: %s", type(error).__name__, _safe(error))
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

    def guarded(self, work: Callable[..., None], *names: str) -> Callable[..., None]:
        """Wrap a lazy listener so any failure reaches the user as an apology."""

        def run(body: dict, **kwargs) -> None:
            try:
                work(*(kwargs[n] if n != "body" else body for n in names))
            except _LISTENER_ERRORS as exc:
                self.apologise(body, exc)

        # Bolt injects arguments by parameter name and tells lazy functions apart by name
        run.__signature__ = _signature(  # type: ignore[attr-defined]
            ("body", *[n for n in names if n != "body"])
        )
        run.__name__ = run.__qualname__ = work.__name__
        return run


def build_app(
    settings: Settings,
    answerer,
    store: RequestStore,
    client: WebClient,
    *,
    process_before_response: bool = False,
    request_verification_enabled: bool = True,
) -> App:
    """The Bolt app; `client` is injected so tests can point it at a loopback Web API."""
    clerk = ClerkSlack(settings, answerer, store, client)
    app = App(
        client=client,
        signing_secret=settings.slack.signing_secret or "",
        process_before_response=process_before_response,
        request_verification_enabled=request_verification_enabled,
        name="clerk",
    )
    app.use(clerk.only_our_workspace)
    app.use(clerk.once_per_event)
    _register(app, clerk)

    @app.error
    def on_error(error: Exception, body: dict) -> None:
        clerk.apologise(body, error)

    return app


def _ack(ack) -> None:
    ack()


def _register(app: App, clerk: ClerkSlack) -> None:
    g = clerk.guarded
    app.event("app_mention")(ack=_ack, lazy=[g(clerk.on_mention, "event")])
    app.event("message", matchers=[_direct_message])(
        ack=_ack, lazy=[g(clerk.on_direct_message, "event")]
    )
    app.event("message")(_ack)  # edits, joins, bot echoes: nothing to do
    app.command(re.compile(r"^/clerk"))(
        ack=clerk.ack_command, lazy=[g(clerk.on_command, "command")]
    )
    app.action(render.HELPFUL)(ack=_ack, lazy=[g(clerk.on_helpful, "body")])
    app.action(render.ASK_OFFICERS)(ack=_ack, lazy=[g(clerk.on_ask_officers, "body")])
    app.action(render.ASSIGN)(ack=_ack, lazy=[g(clerk.on_assign, "body")])
    app.action(render.CLOSE)(ack=_ack, lazy=[g(clerk.on_close, "body")])
    app.action(re.compile(f"^({render.ANSWER_OPEN}|{render.DECLINE_OPEN})$"))(clerk.open_modal)
    app.view(render.ANSWER_VIEW)(
        ack=clerk.submit_answer, lazy=[g(clerk.after_answer, "body", "view")]
    )
    app.view(render.DECLINE_VIEW)(
        ack=clerk.submit_decline, lazy=[g(clerk.after_decline, "body", "view")]
    )
    app.event("app_home_opened")(ack=_ack, lazy=[g(clerk.on_home_opened, "event")])


def _direct_message(event: dict) -> bool:
    """A person's new direct message: no edits, joins, channel messages, or bots (or us)."""
    return (
        event.get("channel_type") == "im"
        and not event.get("subtype")
        and not event.get("bot_id")
        and bool(event.get("user"))
    )


def _signature(names):
    import inspect

    return inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    )


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


def _safe(error: BaseException) -> str:
    """An error's message with anything token-shaped removed."""
    return re.sub(r"xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+", "[token]", str(error))[:500]
