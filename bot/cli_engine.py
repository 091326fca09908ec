"""`clerk index`, `clerk ask`, `clerk status`, `clerk eval`: the answering engine from a terminal."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from indexer.errors import ClerkError, IndexMissingError, QuestionError
from indexer.settings import Settings
from indexer.types import Answer, SearchFilters


def register(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="index committee papers (incremental)")
    index.add_argument("paths", nargs="*", type=Path, help="corpus folders (default: CLERK_CORPUS)")
    index.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    index.set_defaults(run=run_index)

    ask = sub.add_parser("ask", help="answer a question from the papers (no question: a prompt)")
    ask.add_argument("question", nargs="*", help="the question, or '-' to read one per line")
    ask.add_argument("--json", action="store_true", help="one JSON object per answer")
    add_filter_arguments(ask)
    ask.set_defaults(run=run_ask)

    status = sub.add_parser("status", help="what is indexed, and what failed")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=run_status)

    evaluate = sub.add_parser("eval", help="retrieval and abstention figures on a question set")
    evaluate.add_argument("file", type=Path, help="question set (.jsonl)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--baselines", action="store_true", help="also BM25-only and dense-only")
    evaluate.add_argument(
        "--calibrate", action="store_true", help="print the answer threshold that fits the set best"
    )
    evaluate.set_defaults(run=run_eval)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--committee", help="only papers of committees whose name contains this")
    parser.add_argument("--since", help="only meetings on or after this date (YYYY-MM-DD)")
    parser.add_argument("--until", help="only meetings on or before this date (YYYY-MM-DD)")


def filters_from(args: argparse.Namespace) -> SearchFilters:
    from datetime import date

    for value in (args.since, args.until):
        if value:
            try:
                date.fromisoformat(value)
            except ValueError as exc:
                raise ClerkError(f"{value!r} is not a date (YYYY-MM-DD)") from exc
    return SearchFilters(args.committee, args.since, args.until)


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    from indexer.embed import SentenceTransformerEmbedder
    from indexer.refresh import default_roots, refresh

    roots = default_roots(settings, args.paths)
    embedder = SentenceTransformerEmbedder(settings.model)
    with _ProgressBar() as bar:
        summary = refresh(settings, roots, embedder, progress=bar.update)
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(
            f"{summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{summary.removed} removed, {summary.duplicates} duplicates; "
            f"{summary.chunks} passages indexed"
            + ("" if summary.published else " (no change, nothing published)")
        )
        for failure in summary.failed:
            print(f"  failed: {failure['source']}: {failure['reason']}", file=sys.stderr)
    return 1 if summary.failed else 0


class _ProgressBar:
    """A progress bar on a terminal; silent when output goes to a file or CI log."""

    def __enter__(self):
        self._bars: dict[str, object] = {}
        return self

    def update(self, stage: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=stage, unit="", leave=False)
        bar.n = done
        bar.refresh()

    def __exit__(self, *exc):
        for bar in self._bars.values():
            bar.close()


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    from bot.answer import Answerer

    filters = filters_from(args)
    answerer = Answerer.from_settings(settings)
    asker_name = getpass.getuser()
    if args.question == ["-"]:
        return _ask_lines(answerer, settings, sys.stdin, filters, args.json, asker_name)
    if args.question:
        answer = _ask_one(answerer, settings, " ".join(args.question), filters, asker_name)
        _print_answer(answer, args.json)
        return 0
    return _prompt(answerer, settings, filters, args.json, asker_name)


def _ask_lines(answerer, settings, lines, filters, as_json: bool, asker_name: str) -> int:
    status = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            _print_answer(_ask_one(answerer, settings, line, filters, asker_name), as_json)
        except QuestionError as exc:
            status = 1
            print(
                json.dumps({"question": line.strip()[:200], "error": str(exc)})
                if as_json
                else f"clerk: {exc}",
                flush=True,
            )
    return status


def _prompt(answerer, settings, filters, as_json: bool, asker_name: str) -> int:
    print("Ask a question about the committee papers (Ctrl-D to finish).")
    while True:
        try:
            question = input("> ")
        except EOFError:
            print()
            return 0
        if not question.strip():
            continue
        try:
            _print_answer(_ask_one(answerer, settings, question, filters, asker_name), as_json)
        except QuestionError as exc:
            print(f"clerk: {exc}")


def _ask_one(answerer, settings: Settings, question: str, filters, asker_name: str) -> Answer:
    """Answer; an unanswered question becomes a follow-up request for officers."""
    from bot.followup import handle_question, open_store
    from bot.requests import Asker

    store = open_store(settings)
    answer, logged = handle_question(
        answerer, store, question, Asker("cli", asker_name, asker_name), filters
    )
    if logged is not None:
        note = "linked to" if not logged.created else "logged as"
        answer = _with_request_note(
            answer, f"I have asked officers: {note} request #{logged.request.request_id}."
        )
    return answer


def _with_request_note(answer: Answer, note: str) -> Answer:
    from dataclasses import replace

    return replace(answer, text=f"{answer.text} {note}")


def _print_answer(answer: Answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        return
    from bot.render_text import render_answer

    print(render_answer(answer), flush=True)


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from bot.status import index_status, render_status

    try:
        status = index_status(settings)
    except IndexMissingError as exc:
        status = {"indexed": False, "message": str(exc)}
    print(json.dumps(status, indent=2) if args.json else render_status(status))
    return 0


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    from bot.answer import Answerer
    from bot.evaluate import calibrate, evaluate, load_questions, render_report

    questions = load_questions(args.file)
    answerer = Answerer.from_settings(settings)
    modes = ["hybrid", "bm25", "dense"] if args.baselines else ["hybrid"]
    reports = {mode: evaluate(answerer, questions, mode) for mode in modes}
    if args.calibrate:
        reports["calibration"] = calibrate(answerer, questions)
    print(json.dumps(reports, indent=2) if args.json else render_report(reports))
    return 0
