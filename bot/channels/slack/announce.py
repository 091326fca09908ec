"""Every follow-up request reaches the officers' Slack channel once, however it was logged.

A question asked in Slack is posted by its listener the moment it is logged
(`ClerkSlack.post_to_officers`, which records the announcement). Everything else (promises found
in the papers when they are indexed, questions by email or at the terminal) is posted by the Slack
process's periodic pass (`announce_requests`, from `clerk slack`'s background loop), with the
same message officers act on. The store's claim lets only one process post a request; it is
marked announced only once Slack accepted the post, and a refused or failed post lets the claim
go, so the next pass tries again. Without an officers' channel nothing is posted or marked.

A request first asked in Slack is left to its listener for `LISTENER_GRACE`: the pass takes it
over only when the listener's post did not get through, so it is never posted twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels.slack.render import request_message
from bot.requests.model import InfoRequest, RequestStore, iso, utc_now
from bot.settings import Settings

log = logging.getLogger(__name__)

LISTENER_GRACE = timedelta(minutes=5)  # longer than a listener waits out Slack's rate limits
MAX_PER_PASS = 20  # posts per pass: within Slack's one message a second per channel
CLAIM_SECONDS = 300  # the claim outlives a pass of MAX_PER_PASS posts, even rate-limited


@dataclass(frozen=True)
class AnnounceReport:
    """What one pass posted, and what it must try again (request numbers)."""

    posted: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()


def announce_requests(
    settings: Settings, store: RequestStore, client: WebClient, now: datetime | None = None
) -> AnnounceReport:
    """Post open requests the officers' channel has not seen yet; record each that got there."""
    channel = settings.slack.officers_channel
    if not channel:
        return AnnounceReport()
    moment = now or utc_now()
    claimed = store.claim_announcements(moment, CLAIM_SECONDS, MAX_PER_PASS)
    posted: list[int] = []
    failed: list[int] = []
    for request in claimed:
        if _left_to_listener(request, moment):
            continue  # its claim runs out after the grace; by then it is posted, or ours
        try:
            post_request(client, channel, request)
        except Exception as exc:  # recorded and tried again next pass, whatever it was
            why = _reason(exc)
            if not isinstance(exc, SlackApiError | OSError):
                log.exception("posting request #%s failed", request.request_id)
            log.warning("request #%s not posted to officers: %s", request.request_id, why)
            store.record_announcement(request.request_id, error=why, now=moment)
            failed.append(request.request_id)
            continue
        store.record_announcement(request.request_id, now=moment)
        posted.append(request.request_id)
    return AnnounceReport(tuple(posted), tuple(failed))


def post_request(client: WebClient, channel: str, request: InfoRequest) -> None:
    """The request as officers act on it (render.request_message), in their channel."""
    message = request_message(request)
    client.chat_postMessage(
        channel=channel,
        text=message.text,
        blocks=message.blocks,
        unfurl_links=False,
        unfurl_media=False,
    )


def _left_to_listener(request: InfoRequest, now: datetime) -> bool:
    """Logged in Slack moments ago: its listener is posting it."""
    first = request.askers[0].channel if request.askers else ""
    return first == "slack" and request.created_at > iso(now - LISTENER_GRACE)


def _reason(exc: Exception) -> str:
    """Why a post failed, without the payload or anything token-shaped: Slack's error code."""
    if isinstance(exc, SlackApiError):
        return f"Slack refused it: {exc.response.get('error')}"
    return type(exc).__name__
