"""The email channel's notifier: an officer's answer goes back as a reply in the asker's thread."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from bot.channels.email.clients import (
    CONNECTION_ERRORS,
    connect_smtp,
    quit_quietly,
    send,
    smtp_problem,
)
from bot.channels.email.render import render_officer_answer
from bot.errors import DeliveryError
from bot.requests.model import Asker, InfoRequest
from bot.settings import Settings


class EmailNotifier:
    """Delivers an officer's answer to an email asker, as a reply in their original thread."""

    channel = "email"

    def __init__(self, settings: Settings, smtp_factory: Callable[[], smtplib.SMTP]):
        self.own_address = settings.email.address.strip().lower()
        self.smtp_factory = smtp_factory

    def deliver(self, request: InfoRequest, asker: Asker) -> None:
        """Send request.answer to asker.user_id; DeliveryError when the server does not take it."""
        reply = render_officer_answer(request, asker, self.own_address)
        try:
            smtp = self.smtp_factory()
            try:
                send(smtp, reply)
            finally:
                quit_quietly(smtp)
        except CONNECTION_ERRORS as exc:
            raise DeliveryError(f"email not sent: {smtp_problem(exc)}") from exc


def notifier_from_settings(settings: Settings) -> EmailNotifier | None:
    """The email notifier when SMTP and Clerk's address are configured, else None."""
    if not (settings.email.smtp_host and settings.email.address):
        return None
    return EmailNotifier(settings, lambda: connect_smtp(settings))
