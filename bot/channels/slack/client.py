"""The one place Clerk builds a Slack Web API client from settings."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.settings import Settings
from indexer.errors import ConfigError


def web_client(settings: Settings, timeout: int = 30) -> WebClient:
    """A WebClient for the configured API URL that waits out 429s (Retry-After) and retries."""
    if not settings.slack.bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set; Clerk needs the bot token (xoxb-...)")
    base_url = settings.slack.api_url
    if not base_url.endswith("/"):
        base_url += "/"
    return WebClient(
        token=settings.slack.bot_token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )
