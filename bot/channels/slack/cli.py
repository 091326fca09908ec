"""`clerk slack [--port N]`: run the Slack bot (Socket Mode with an app token, else HTTP mode)."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from bot import health
from bot.settings import Settings
from indexer.errors import ConfigError

log = logging.getLogger(__name__)
DELIVERY_INTERVAL = 60.0  # seconds between passes that deliver (and retry) officers' answers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "slack",
        help="run the Slack bot: Socket Mode if SLACK_APP_TOKEN is set, else HTTP mode",
    )
    parser.add_argument(
        "--port", type=int, default=3000, help="HTTP mode: port for POST /slack/events (3000)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP mode: address to listen on (127.0.0.1; 0.0.0.0 in a container)",
    )
    parser.set_defaults(run=run_slack)


def check_slack_settings(settings: Settings) -> str:
    """Which mode the settings allow ("socket" or "http"); ConfigError naming what is missing."""
    if not settings.slack.bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: Clerk needs the bot token (xoxb-...)")
    if settings.slack.app_token:
        if not settings.slack.app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-...)")
        return "socket"
    if not settings.slack.signing_secret:
        raise ConfigError(
            "set SLACK_APP_TOKEN (xapp-...) for Socket Mode, or SLACK_SIGNING_SECRET for HTTP "
            "mode (POST /slack/events)"
        )
    return "http"


def run_slack(args, settings: Settings) -> int:
    # Imported here so that `clerk --help` stays quick.
    from bot.channels.slack.app import build_bot
    from bot.channels.slack.client import web_client
    from bot.channels.slack.notify import SlackNotifier
    from bot.engine.answer import Answerer
    from bot.requests.service import open_store

    mode = check_slack_settings(settings)
    client = web_client(settings)
    answerer = Answerer.from_settings(settings)
    store = open_store(settings)
    bot = build_bot(settings, answerer, store, client)
    _leave_on_sigterm()
    bot.workers.start()  # first: resumes work a stopped process acknowledged but did not finish
    stop = threading.Event()
    notifier = SlackNotifier(client)
    threading.Thread(
        target=_deliver_forever,
        args=(settings, store, notifier, client, bot.workers.queue, stop),
        daemon=True,
    ).start()
    try:
        if mode == "socket":
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            print("clerk: connected to Slack in Socket Mode", file=sys.stderr, flush=True)
            SocketModeHandler(bot.app, settings.slack.app_token, web_client=client).start()
        else:
            from bot.channels.slack.http import SlackHttpServer

            server = SlackHttpServer(bot.app, args.host, args.port)
            print(f"clerk: listening on {server.url}", file=sys.stderr, flush=True)
            try:
                server.serve_forever()
            finally:
                server.stop()  # refuse new requests (Slack retries them) while work finishes
    finally:
        stop.set()
        bot.workers.stop()  # each worker finishes the job in hand
    return 0


def _leave_on_sigterm() -> None:
    """On SIGTERM (`docker stop`, systemd) stop serving and let the workers finish the jobs they
    hold, rather than die mid-answer and leave them to be resumed: a "working" message whose
    post was under way would then be posted again."""

    def leave(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)


def _deliver_forever(
    settings: Settings, store, notifier, client, jobs, stop: threading.Event
) -> None:
    """Officers may answer from the CLI or the email process too, a failed delivery waits for a
    retry, and requests are logged by email, the CLI and index runs: every minute, run a pass.
    Each pass also records a heartbeat for the container health check, with the queue's counts."""
    while True:
        try:
            done = run_pass(settings, store, notifier, client)
            counts = jobs.counts()
            detail = (
                f"{done}; {counts['pending'] + counts['claimed']} queued, "
                f"{counts['failed']} failed today"
            )
            health.beat(settings.home, "slack", True, detail)
        except Exception as exc:  # keep the loop alive; the store keeps what is due
            log.error("delivery pass failed: %s", type(exc).__name__)
            health.beat(settings.home, "slack", False, type(exc).__name__)
        if stop.wait(DELIVERY_INTERVAL):
            return


def run_pass(settings: Settings, store, notifier, client) -> str:
    """One pass of the Slack process's background work: check the Slack connection, deliver
    officers' answers due to Slack askers, and post requests the officers' channel has not seen
    yet (bot.channels.slack.announce). Returns what it did, in counts."""
    from bot.channels.slack.announce import announce_requests
    from bot.requests.service import deliver_answers

    client.auth_test()  # the token still works and Slack answers
    report = deliver_answers(store, {"slack": notifier})
    if report.results:
        log.info("delivered %d officer answers to Slack", len(report.sent))
    announced = announce_requests(settings, store, client)
    if announced.posted or announced.failed:
        log.info(
            "posted %d requests to the officers' channel, %d to try again",
            len(announced.posted),
            len(announced.failed),
        )
    return f"{len(report.sent)} delivered, {len(announced.posted)} announced"
