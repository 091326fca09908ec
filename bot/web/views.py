"""The desk's pages: sign-in, the queue, one request and its forms, the overview, the export.

Answering goes through the one follow-up service every channel uses (`record_answer`, then
`follow_through`): the answer is published as a cited source, delivered to every asker through
their channel, and indexed.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from bot.errors import RequestError, SignInError
from bot.requests.model import (
    ANSWERED,
    ASSIGNED,
    CLOSED,
    DECLINED,
    DELIVERY_SENT,
    DUPLICATE,
    OPEN,
    STATES,
    TRANSITIONS,
    InfoRequest,
    RequestFilter,
    write_csv,
)
from bot.requests.service import deliver_answers, follow_through, record_answer
from bot.web import charts
from bot.web.auth import csrf_token
from bot.web.overview import freshness, queue_figures
from bot.web.queue import STATE_CHOICES, QueueQuery, age_in_working_days, paginate, select

if TYPE_CHECKING:
    from bot.web.app import Desk

log = logging.getLogger(__name__)
desk = Blueprint("desk", __name__)


def current_desk() -> Desk:
    return current_app.extensions["clerk"]


# ---- signing in ------------------------------------------------------------------------------


@desk.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    target = _safe_next(request.values.get("next", ""))
    if g.officer:
        return redirect(target)
    if request.method == "GET":
        return render_template("login.html", next=target)
    clerk = current_desk()
    name = request.form.get("name", "").strip()[:100]
    address = request.remote_addr or ""
    if not clerk.limiter.allowed(address, name):
        log.warning("sign-in refused: too many failed attempts")
        flash("Too many failed sign-ins. Wait a few minutes, then try again.", "error")
        return render_template("login.html", next=target), 429
    try:
        ok = clerk.accounts.verify(name, request.form.get("password", ""))
    except SignInError:
        log.exception("officer accounts unreadable")
        ok = False
    if not ok:
        clerk.limiter.failed(address, name)
        flash("That name and password do not match an officer account.", "error")
        return render_template("login.html", next=target), 401
    clerk.limiter.succeeded(name)
    session.clear()  # a fresh session (and CSRF token) on every sign-in
    session.permanent = True
    session["officer"] = name
    csrf_token(session)
    return redirect(target)


@desk.route("/logout", methods=["POST"])
def logout() -> Response:
    session.clear()
    return redirect(url_for("desk.login"))


def _safe_next(target: str) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return url_for("desk.queue")


# ---- reading ---------------------------------------------------------------------------------


@desk.route("/")
def home() -> Response:
    return redirect(url_for("desk.queue"))


def _queue_rows(query: QueueQuery):
    clerk = current_desk()
    found = clerk.store.list(query.store_filter())
    return select(
        found, query, g.officer, clerk.clock(), clerk.settings.requests.overdue_working_days
    )


@desk.route("/queue")
def queue() -> str:
    clerk = current_desk()
    query = QueueQuery.from_args(request.args)
    page = paginate(_queue_rows(query), query.page, clerk.settings.web.page_size)
    committees = sorted({r.committee for r in clerk.store.list() if r.committee})
    return render_template(
        "queue.html",
        query=query,
        page=page,
        committees=committees,
        state_choices=STATE_CHOICES,
        overdue_days=clerk.settings.requests.overdue_working_days,
    )


@desk.route("/export.csv")
def export() -> Response:
    """The filtered queue (every page of it) as `clerk requests export` writes it."""
    rows = _queue_rows(QueueQuery.from_args(request.args))
    out = io.StringIO()
    write_csv((row.request for row in rows), out)
    log.info("exported %d requests", len(rows))
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="clerk-requests.csv"'},
    )


@desk.route("/requests/<int:request_id>")
def request_page(request_id: int) -> str:
    clerk = current_desk()
    try:
        item = clerk.store.get(request_id)
    except RequestError:
        abort(404, f"There is no request #{request_id}.")
    return render_template(
        "request.html",
        item=item,
        age_days=age_in_working_days(item, clerk.clock()),
        folded=[
            r
            for r in clerk.store.list(RequestFilter(states=(DUPLICATE,)))
            if r.duplicate_of == request_id
        ],
        history=clerk.store.history(request_id),
        deliveries=clerk.store.deliveries(request_id),
        allowed=allowed_actions(item),
    )


def allowed_actions(item: InfoRequest) -> frozenset[str]:
    """The forms the request page offers, from the lifecycle's own transitions."""
    next_states = TRANSITIONS[item.state]
    by_state = {
        ASSIGNED: "assign",
        ANSWERED: "answer",
        DECLINED: "decline",
        CLOSED: "close",
        OPEN: "reopen",
        DUPLICATE: "duplicate",
    }
    return frozenset(action for state, action in by_state.items() if state in next_states)


@desk.route("/overview")
def overview() -> str:
    clerk = current_desk()
    figures = queue_figures(
        clerk.store.list(), clerk.clock(), clerk.settings.requests.overdue_working_days
    )
    by_state = dict(figures.per_state)
    return render_template(
        "overview.html",
        figures=figures,
        committee_chart=charts.bar_chart("Requests per committee", figures.per_committee),
        state_chart=charts.bar_chart(
            "Requests by state", [(s, by_state[s]) for s in STATES if s in by_state]
        ),
        fresh=freshness(clerk.settings),
        overdue_days=clerk.settings.requests.overdue_working_days,
    )


# ---- officers' changes -----------------------------------------------------------------------


@desk.route("/requests/<int:request_id>/<action>", methods=["POST"])
def act(request_id: int, action: str) -> Response:
    handler = ACTIONS.get(action)
    if handler is None:
        abort(404)
    try:
        message = handler(current_desk(), request_id, g.officer)
        flash(message, "ok")
    except RequestError as exc:
        flash(str(exc), "error")
    return redirect(url_for("desk.request_page", request_id=request_id))


def _form(name: str) -> str:
    return request.form.get(name, "")


def _assign(clerk: Desk, request_id: int, officer: str) -> str:
    to = _form("to").strip() or officer
    item = clerk.store.assign(request_id, to)
    return f"Request #{item.request_id} is assigned to {item.assigned_to}."


def _answer(clerk: Desk, request_id: int, officer: str) -> str:
    item = record_answer(clerk.settings, clerk.store, request_id, officer, _form("answer"))
    done = follow_through(clerk.settings, clerk.store, item, clerk.notifiers, clerk.embedder)
    sent = len(done.deliveries.sent)
    waiting = sum(d.state != DELIVERY_SENT for d in clerk.store.deliveries(request_id))
    log.info(
        "request #%d answered on the desk: %d delivered, %d waiting", request_id, sent, waiting
    )
    parts = [f"Request #{request_id} is answered.", f"Delivered to {sent} asker(s)."]
    if waiting:
        parts.append(f"{waiting} delivery(ies) will be made by their channel's service.")
    if done.published is None:
        parts.append("It could not be published as a source yet (see the log).")
    elif done.indexed is not None:
        parts.append("It is now a cited source.")
    else:
        parts.append("It becomes a cited source at the next index run.")
    return " ".join(parts)


def _decline(clerk: Desk, request_id: int, officer: str) -> str:
    item = clerk.store.decline(request_id, officer, _form("reason"))
    return f"Request #{item.request_id} is declined."


def _close(clerk: Desk, request_id: int, officer: str) -> str:
    return f"Request #{clerk.store.close(request_id, officer).request_id} is closed."


def _reopen(clerk: Desk, request_id: int, officer: str) -> str:
    item = clerk.store.reopen(request_id, officer, _form("reason").strip())
    return f"Request #{item.request_id} is open again."


def _duplicate(clerk: Desk, request_id: int, officer: str) -> str:
    of = _form("of").strip().lstrip("#")
    if not of.isdigit():
        raise RequestError("give the number of the request this one duplicates")
    item = clerk.store.mark_duplicate(request_id, int(of), officer)
    # Folded into an answered request, its askers are owed that answer now.
    sent = len(deliver_answers(clerk.store, clerk.notifiers).sent)
    told = f" {sent} asker(s) were sent its answer." if sent else ""
    return f"Request #{item.request_id} is a duplicate of #{item.duplicate_of}.{told}"


ACTIONS = {
    "assign": _assign,
    "answer": _answer,
    "decline": _decline,
    "close": _close,
    "reopen": _reopen,
    "duplicate": _duplicate,
}
