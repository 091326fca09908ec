"""`clerk index`, `ask`, `status` and `eval`: the answering engine from a terminal."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import replace
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
    status.add_argument(
        "--settings", action="store_true", help="also list every setting (secrets masked)"
    )
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
    from bot.followup import open_store
    from bot.requests import Asker

    filters = filters_from(args)
    answerer = Answerer.from_settings(settings)
    user = getpass.getuser()
    asker = Asker("cli", user, user)
    with open_store(settings) as store:
        ask = _Asking(answerer, store, asker, filters)
        if args.question == ["-"]:
            return _ask_lines(ask, sys.stdin, args.json)
        if args.question:
            _print_answer(ask(" ".join(args.question)), args.json)
            return 0
        return _prompt(ask, args.json)


class _Asking:
    """One terminal session's way to ask: answer, and log what the papers do not answer."""

    def __init__(self, answerer, store, asker, filters):
        self.answerer, self.store, self.asker, self.filters = answerer, store, asker, filters

    def __call__(self, question: str) -> Answer:
        from bot.followup import handle_question

        answer, logged = handle_question(
            self.answerer, self.store, question, self.asker, self.filters
        )
        if logged is None:
            return answer
        verb = "logged as" if logged.created else "added you to"
        note = f"I have asked officers: {verb} request #{logged.request.request_id}."
        return replace(answer, text=f"{answer.text} {note}")


def _ask_lines(ask: _Asking, lines, as_json: bool) -> int:
    status = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            _print_answer(ask(line), as_json)
        except QuestionError as exc:
            status = 1
            print(
                json.dumps({"question": line.strip()[:200], "error": str(exc)})
                if as_json
                else f"clerk: {exc}",
                flush=True,
            )
    return status


def _prompt(ask: _Asking, as_json: bool) -> int:
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
            _print_answer(ask(question), as_json)
        except QuestionError as exc:
            print(f"clerk: {exc}")


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
    if args.settings:
        status["settings"] = [
            {"variable": env, "value": value, "help": text}
            for env, value, text in settings.describe()
        ]
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
