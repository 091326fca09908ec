"""The Slack channel of follow-up delivery: an officer's answer goes back to the asker's thread."""

from __future__ import annotations

import re

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels.slack.client import web_client
from bot.channels.slack.render import officer_answer_message
from bot.errors import DeliveryError
from bot.requests.model import Asker, InfoRequest
from bot.settings import Settings

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


class SlackNotifier:
    """Implements bot.requests.model.Notifier for askers whose channel is "slack"."""

    channel = "slack"

    def __init__(self, client: WebClient) -> None:
        self._client = client

    def deliver(self, request: InfoRequest, asker: Asker) -> None:
        """Post the answer in the thread (or DM) the question came from."""
        reply_to = asker.reply_to or {}
        message = officer_answer_message(request)
        blocks = message.blocks
        try:
            channel = reply_to.get("channel") or self._open_dm(asker.user_id)
            if not channel.startswith("D") and _USER_ID.fullmatch(asker.user_id):
                # in a channel thread, name the asker so they are notified
                blocks = [
                    {"type": "section", "text": {"type": "mrkdwn", "text": f"<@{asker.user_id}>"}},
                    *blocks,
                ]
            self._client.chat_postMessage(
                channel=channel,
                thread_ts=reply_to.get("thread_ts") or None,
                text=message.text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            raise DeliveryError(f"Slack refused the message: {exc.response.get('error')}") from exc
        except OSError as exc:  # network trouble: retried later by deliver_answers
            raise DeliveryError(f"Slack could not be reached: {exc}") from exc

    def _open_dm(self, user_id: str) -> str:
        return self._client.conversations_open(users=user_id)["channel"]["id"]


def notifier_from_settings(settings: Settings) -> SlackNotifier | None:
    """A Slack notifier when a bot token is configured (see bot.channels.build_notifiers)."""
    if not settings.slack.bot_token:
        return None
    return SlackNotifier(web_client(settings))
