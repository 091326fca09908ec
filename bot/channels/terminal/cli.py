"""`clerk ask`: the terminal channel. One question, a file of them, or a prompt; what the papers
do not answer is logged for officers, and their answer arrives in the user's inbox file."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import replace

from bot.cli.options import add_filter_arguments, filters_from
from bot.errors import QuestionError
from bot.settings import Settings
from bot.types import Answer


def register(sub: argparse._SubParsersAction) -> None:
    ask = sub.add_parser("ask", help="answer a question from the papers (no question: a prompt)")
    ask.add_argument("question", nargs="*", help="the question, or '-' to read one per line")
    ask.add_argument("--json", action="store_true", help="one JSON object per answer")
    add_filter_arguments(ask)
    ask.set_defaults(run=run_ask)


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    from bot.engine.answer import Answerer
    from bot.requests.model import Asker
    from bot.requests.service import open_store

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
        from bot.requests.service import handle_question

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
    from bot.channels.terminal.render import render_answer

    print(render_answer(answer), flush=True)
