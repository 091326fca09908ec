"""`clerk requests ...`: officers list, answer and manage follow-up requests from a terminal."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import timedelta
from pathlib import Path

from bot.channels import build_notifiers
from bot.errors import RequestError
from bot.requests.model import (
    PURGEABLE,
    STATES,
    InfoRequest,
    RequestFilter,
    RequestStore,
    iso,
    utc_now,
    write_csv,
)
from bot.requests.service import (
    answer_request,
    deliver_answers,
    open_store,
)
from bot.settings import Settings


def register(subparsers) -> None:
    parser = subparsers.add_parser("requests", help="follow-up requests for officers")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    officer = argparse.ArgumentParser(add_help=False)
    officer.add_argument(
        "--officer", default=None, help="who is acting (default: your local user name)"
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable output")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--state", action="append", choices=STATES, help="repeat for several")
    filters.add_argument("--older-than", type=_days, metavar="DAYS", help="logged before")
    filters.add_argument("--committee", help="committee name contains")
    filters.add_argument("--asker", help="asker id or name contains")

    def verb(name, run, help, parents=()):  # noqa: A002
        p = verbs.add_parser(name, help=help, parents=list(parents))
        p.set_defaults(run=run)
        return p

    verb("list", run_list, "list requests, oldest first", [filters, as_json])
    verb("show", run_show, "one request in full", [as_json]).add_argument("id", type=int)
    verb("history", run_history, "audit trail of a request, or of all", [as_json]).add_argument(
        "id", type=int, nargs="?"
    )
    p = verb("assign", run_assign, "assign a request (to yourself by default)", [officer])
    p.add_argument("id", type=int)
    p.add_argument("--to", help="the officer to assign it to")
    p = verb("answer", run_answer, "answer a request and tell every asker", [officer])
    p.add_argument("id", type=int)
    p.add_argument("--text", help="the answer (default: read from standard input)")
    p.add_argument("--no-deliver", action="store_true", help="record only; deliver later")
    verb("close", run_close, "close an answered request", [officer]).add_argument("id", type=int)
    p = verb("decline", run_decline, "decline a request with a reason", [officer])
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    p = verb("reopen", run_reopen, "reopen a declined, duplicate or assigned request", [officer])
    p.add_argument("id", type=int)
    p.add_argument("--reason", default="")
    p = verb("duplicate", run_duplicate, "mark a request as a duplicate of another", [officer])
    p.add_argument("id", type=int)
    p.add_argument("--of", type=int, required=True, dest="of_id", metavar="ID")
    p = verb("export", run_export, "export requests as CSV or JSON", [filters])
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_const", const="csv", dest="format")
    fmt.add_argument("--json", action="store_const", const="json", dest="format")
    p.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    p = verb("overdue", run_overdue, "open requests older than the working-day limit", [as_json])
    p.add_argument("--days", type=int, help="working days (default: CLERK_OVERDUE_DAYS)")
    p = verb("purge", run_purge, "delete finished requests and their personal data", [officer])
    p.add_argument("--older-than", type=_days, metavar="DAYS", required=True)
    p.add_argument("--dry-run", action="store_true", help="list what would be purged")
    p = verb("deliver", run_deliver, "send answers that are waiting to be delivered", [as_json])
    p.add_argument("--retry-failed", action="store_true", help="also retry deliveries given up")


def _days(text: str) -> int:
    days = int(text)
    if days < 0:
        raise argparse.ArgumentTypeError("DAYS must be 0 or more")
    return days


def _officer(args) -> str:
    return (args.officer or getpass.getuser()).strip()


def _with_store(settings: Settings, work) -> int:
    store = open_store(settings)
    try:
        return int(work(store) or 0)
    finally:
        store.close_store()


def _filter(args, states=None) -> RequestFilter:
    before = None
    if args.older_than is not None:
        before = iso(utc_now() - timedelta(days=args.older_than))
    return RequestFilter(
        states=tuple(args.state or states or ()),
        created_before=before,
        committee=args.committee,
        asker=args.asker,
    )


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _print_table(requests: list[InfoRequest]) -> None:
    if not requests:
        print("No requests.")
    for r in requests:
        who = f"{len(r.askers)} asker{'s' if len(r.askers) != 1 else ''}"
        extra = f" -> {r.assigned_to}" if r.assigned_to else ""
        print(
            f"#{r.request_id:<5} {r.state:<9} {r.created_at[:10]}  {r.committee or '-'}  "
            f"{_short(r.question)}  ({who}{extra})"
        )


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- reading ---------------------------------------------------------------------------------


def run_list(args, settings: Settings) -> int:
    def work(store: RequestStore):
        found = store.list(_filter(args))
        _print_json([r.to_dict() for r in found]) if args.json else _print_table(found)

    return _with_store(settings, work)


def run_show(args, settings: Settings) -> int:
    def work(store: RequestStore):
        request = store.get(args.id)
        deliveries = store.deliveries(args.id)
        if args.json:
            data = request.to_dict()
            data["deliveries"] = [d.to_dict() for d in deliveries]
            return _print_json(data)
        _print_request(request)
        for d in deliveries:
            error = f" ({d.last_error})" if d.last_error else ""
            print(f"  delivery to {d.asker.channel}:{d.asker.user_id}: {d.state}{error}")

    return _with_store(settings, work)


def _print_request(r: InfoRequest) -> None:
    print(f"Request #{r.request_id} [{r.state}] logged {r.created_at}, updated {r.updated_at}")
    print(f"Committee: {r.committee or '-'}")
    print(f"Question: {r.question}")
    for a in r.askers:
        name = f" ({a.display_name})" if a.display_name else ""
        print(f"  asked by {a.channel}:{a.user_id}{name}")
    if r.assigned_to:
        print(f"Assigned to: {r.assigned_to}")
    if r.duplicate_of:
        print(f"Duplicate of: #{r.duplicate_of}")
    if r.reason:
        print(f"Reason: {r.reason}")
    if r.answer:
        print(f"Answered by {r.answered_by} at {r.answered_at}:\n{r.answer}")
    for c in r.nearest:
        page = f" p.{c.page}" if c.page else ""
        print(f"  nearest: {c.title}{page} ({c.committee}, {c.meeting_date}) {_short(c.quote)}")


def run_history(args, settings: Settings) -> int:
    def work(store: RequestStore):
        events = store.history(args.id)
        if args.json:
            return _print_json([e.to_dict() for e in events])
        for e in events:
            where = f"#{e.request_id}" if e.request_id else "store"
            print(f"{e.at}  {where:<6} {e.actor:<20} {e.action}: {_short(e.detail, 80)}")

    return _with_store(settings, work)


def run_overdue(args, settings: Settings) -> int:
    days = settings.requests.overdue_working_days if args.days is None else args.days

    def work(store: RequestStore):
        found = store.overdue(days)
        if args.json:
            return _print_json([r.to_dict() for r in found])
        print(f"Requests waiting more than {days} working days:")
        _print_table(found)

    return _with_store(settings, work)


def run_export(args, settings: Settings) -> int:
    def work(store: RequestStore):
        found = store.list(_filter(args))
        out = args.output.open("w", newline="", encoding="utf-8") if args.output else sys.stdout
        try:
            if args.format == "json":
                json.dump([r.to_dict() for r in found], out, indent=2, ensure_ascii=False)
                out.write("\n")
            else:
                write_csv(found, out)
        finally:
            if args.output:
                out.close()

    return _with_store(settings, work)


# ---- officers' changes -----------------------------------------------------------------------


def run_assign(args, settings: Settings) -> int:
    def work(store: RequestStore):
        officer = _officer(args)
        request = store.assign(args.id, (args.to or officer).strip())
        print(f"Request #{request.request_id} assigned to {request.assigned_to}.")

    return _with_store(settings, work)


def run_answer(args, settings: Settings) -> int:
    text = args.text if args.text is not None else sys.stdin.read()
    if not text.strip():
        raise RequestError("the answer is empty; give --text or type it on standard input")

    def work(store: RequestStore):
        from indexer.embed import embedder_for  # the model loads only when needed

        notifiers = {} if args.no_deliver else build_notifiers(settings)
        embedder = embedder_for(settings.index)
        done = answer_request(settings, store, args.id, _officer(args), text, notifiers, embedder)
        print(f"Request #{done.request.request_id} answered.")
        if done.published is None:
            print("Could not publish it as a source (see the log); it is safe in the store.")
        else:
            when = "now" if done.indexed is not None else "after the next `clerk index`"
            print(f"Published as {done.published}; searchable {when}.")
        if not args.no_deliver:
            _report(done.deliveries, as_json=False)

    return _with_store(settings, work)


def run_close(args, settings: Settings) -> int:
    return _with_store(settings, lambda store: _done(store.close(args.id, _officer(args))))


def run_decline(args, settings: Settings) -> int:
    return _with_store(
        settings, lambda store: _done(store.decline(args.id, _officer(args), args.reason))
    )


def run_reopen(args, settings: Settings) -> int:
    return _with_store(
        settings, lambda store: _done(store.reopen(args.id, _officer(args), args.reason))
    )


def run_duplicate(args, settings: Settings) -> int:
    return _with_store(
        settings, lambda store: _done(store.mark_duplicate(args.id, args.of_id, _officer(args)))
    )


def _done(request: InfoRequest) -> None:
    print(f"Request #{request.request_id} is now {request.state}.")


def run_purge(args, settings: Settings) -> int:
    cutoff = utc_now() - timedelta(days=args.older_than)

    def work(store: RequestStore):
        if args.dry_run:
            finished = store.list(RequestFilter(states=PURGEABLE))
            doomed = [r for r in finished if r.updated_at < iso(cutoff)]
            print(f"Would purge {len(doomed)} request(s).")
            return _print_table(doomed) if doomed else None
        from bot.retention import purge_all
        from indexer.embed import embedder_for  # the model loads only if needed

        embedder = embedder_for(settings.index)  # the encoder the index was built with
        report = purge_all(settings, store, cutoff, _officer(args), embedder)
        if report.closed:
            print(f"Closed {len(report.closed)} request(s) answered long ago.")
        print(
            f"Purged {len(report.purged)} request(s) and their askers' personal data; "
            f"{report.responses_removed} response document(s) removed"
            + (" and dropped from the index" if report.reindexed else "")
            + "; "
            + ", ".join(f"{n} {channel} item(s)" for channel, n in report.forgotten.items())
            + " forgotten."
        )

    return _with_store(settings, work)


def run_deliver(args, settings: Settings) -> int:
    def work(store: RequestStore):
        if args.retry_failed:
            store.retry_failed(getpass.getuser())
        report = deliver_answers(store, build_notifiers(settings))
        _report(report, args.json)
        return 1 if report.failed else 0

    return _with_store(settings, work)


def _report(report, as_json: bool) -> None:
    if as_json:
        return _print_json(report.to_dict())
    for d in report.sent:
        print(f"Delivered request #{d.request_id} to {d.asker.channel}:{d.asker.user_id}.")
    for d in report.failed:
        when = f"retry after {d.next_attempt_at}" if d.state == "pending" else "given up"
        print(
            f"Could not deliver request #{d.request_id} to {d.asker.channel}:{d.asker.user_id}"
            f" ({when}): {d.last_error}"
        )
    if not report.results:
        print("Nothing to deliver.")
