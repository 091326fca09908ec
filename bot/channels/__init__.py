"""The channels people reach Clerk through: the terminal, Slack and email.

Each channel package has a `cli` module whose `register(subparsers)` adds its verbs, and a
`notify` module whose `notifier_from_settings(settings)` gives the notifier that delivers
officers' answers to its askers (None when the channel is not configured), and a `retention`
module whose `forget(settings, older_than, request_ids)` removes the personal data the channel
keeps when requests are purged.
"""

from __future__ import annotations

import argparse

from bot.channels.email import cli as email_cli
from bot.channels.email import notify as email_notify
from bot.channels.email import retention as email_retention
from bot.channels.slack import cli as slack_cli
from bot.channels.slack import notify as slack_notify
from bot.channels.slack import retention as slack_retention
from bot.channels.terminal import cli as terminal_cli
from bot.channels.terminal import notify as terminal_notify
from bot.channels.terminal import retention as terminal_retention
from bot.requests.model import Notifier
from bot.settings import Settings

CLI_MODULES = (terminal_cli, slack_cli, email_cli)
NOTIFY_MODULES = (terminal_notify, slack_notify, email_notify)
RETENTION_MODULES = (terminal_retention, slack_retention, email_retention)


def register_verbs(sub: argparse._SubParsersAction) -> None:
    """Add every channel's verbs to the `clerk` command."""
    for module in CLI_MODULES:
        module.register(sub)


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """Every channel this process can deliver through: the terminal inbox always, Slack and
    email when they are configured."""
    notifiers: dict[str, Notifier] = {}
    for module in NOTIFY_MODULES:
        notifier = module.notifier_from_settings(settings)
        if notifier is not None:
            notifiers[notifier.channel] = notifier
    return notifiers


def forget_people(settings: Settings, older_than: str, request_ids: list[int]) -> dict[str, int]:
    """Every channel forgets what it keeps about people from before the cut-off."""
    return {
        module.__name__.split(".")[-2]: module.forget(settings, older_than, request_ids)
        for module in RETENTION_MODULES
    }
