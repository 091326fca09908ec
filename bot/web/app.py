"""The desk as a Flask application: who may see it, and the guards every page passes.

`create_app` wires the pages (`bot.web.views`) to the request store, the channels' notifiers and
the embedder that indexes officers' answers. Every page but sign-in needs an officer; every form
post needs the session's CSRF token; every response says not to be cached or framed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, abort, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from bot.requests.model import Notifier, RequestStore, utc_now
from bot.settings import Settings
from bot.web import views
from bot.web.accounts import OfficerAccounts
from bot.web.auth import (
    CSRF_FIELD,
    DeskSessionInterface,
    LoginLimiter,
    Network,
    csrf_ok,
    csrf_token,
    proxy_networks,
    proxy_officer,
    session_key,
)

log = logging.getLogger(__name__)
OPEN_ENDPOINTS = frozenset({"desk.login", "static"})
# Scripts are never used; styles and images come from the desk itself.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Desk:
    """What the pages work with; one per application."""

    settings: Settings
    store: RequestStore
    notifiers: Mapping[str, Notifier]
    embedder: object | None
    accounts: OfficerAccounts
    limiter: LoginLimiter
    networks: tuple[Network, ...]
    clock: Callable[[], datetime]


def create_app(
    settings: Settings,
    store: RequestStore,
    notifiers: Mapping[str, Notifier] | None = None,
    embedder=None,
    clock: Callable[[], datetime] = utc_now,
) -> Flask:
    """The desk, ready to serve (by `bot.web.serve` or any WSGI server)."""
    web = settings.web
    networks = proxy_networks(web)
    app = Flask(__name__)
    app.secret_key = session_key(settings)
    app.session_interface = DeskSessionInterface(networks)
    app.config.update(
        SESSION_COOKIE_NAME="clerk_desk",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=web.session_hours),
        MAX_CONTENT_LENGTH=256 * 1024,
    )
    app.extensions["clerk"] = Desk(
        settings=settings,
        store=store,
        notifiers=dict(notifiers or {}),
        embedder=embedder,
        accounts=OfficerAccounts.from_settings(settings),
        limiter=LoginLimiter(web.login_attempts, web.login_window_minutes * 60),
        networks=networks,
        clock=clock,
    )
    app.register_blueprint(views.desk)
    app.before_request(_require_officer)
    app.after_request(_protect)
    app.jinja_env.globals["csrf_token"] = lambda: csrf_token(session)
    app.jinja_env.globals["CSRF_FIELD"] = CSRF_FIELD
    return app


def _require_officer() -> Response | None:
    """Everything but sign-in is for officers; every form post carries the session's token."""
    desk: Desk = views.current_desk()
    g.officer = proxy_officer(
        desk.settings.web, desk.networks, request.remote_addr, request.headers
    ) or session.get("officer")
    if request.method == "POST" and not csrf_ok(session, request.form.get(CSRF_FIELD)):
        log.warning("form post without a valid CSRF token refused (%s)", request.endpoint)
        abort(403, "This form has expired or did not come from the desk. Reload and try again.")
    if g.officer or request.endpoint in OPEN_ENDPOINTS:
        return None
    if request.method != "GET":
        abort(403, "Sign in first.")
    return redirect(url_for("desk.login", next=request.full_path.rstrip("?")))


def _protect(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":  # pages hold questions and askers: never kept by caches
        response.headers["Cache-Control"] = "no-store"
    return response
