"""`clerk index`, `status` and `eval`: the index and the engine, for operators."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from typing import Any

from bot.settings import Settings
from indexer.errors import ClerkError, IndexMissingError


def register(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="index committee papers (incremental)")
    index.add_argument("paths", nargs="*", type=Path, help="corpus folders (default: CLERK_CORPUS)")
    index.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    index.set_defaults(run=run_index)

    encoder = sub.add_parser("encoder", help="the int8 ONNX encoder (CLERK_ENCODER=onnx-int8)")
    encoder.add_argument(
        "action", choices=["build", "tune"],
        help="build: the int8 graph now (otherwise built at first use); tune: fine-tune the "
        "bundled model on written questions about the indexed papers (about 13 minutes on two "
        "cores), then set CLERK_MODEL to the folder it prints and index again",
    )  # fmt: skip
    encoder.add_argument("--force", action="store_true", help="rebuild even if already built")
    encoder.add_argument(
        "--written", type=Path, nargs="*", default=None,
        help="tune: JSONL files of questions people wrote (default: CLERK_READER_WRITTEN)",
    )  # fmt: skip
    encoder.add_argument("--epochs", type=int, default=3, help="tune: passes over them")
    encoder.add_argument("--seed", type=int, default=13)
    encoder.add_argument("--json", action="store_true")
    encoder.set_defaults(run=run_encoder)

    reader = sub.add_parser("reader", help="the learned reader (CLERK_READER)")
    reader.add_argument("action", choices=["build"], help="mine pairs from the index and train it")
    reader.add_argument(
        "--recipe",
        choices=["cross-encoder", "late-interaction"],
        default="cross-encoder",
        help="MiniLM fine-tuned to read question and passage together (about 45 minutes on "
        "two cores), or a small head over the encoder's token vectors (minutes; it did not "
        "help on the dev set)",
    )
    reader.add_argument("--questions", type=int, default=5000, help="questions to write")
    reader.add_argument(
        "--written", type=Path, nargs="*", default=None,
        help="cross-encoder: JSONL files of questions people wrote, trained on beside the mined "
        "ones (never eval/dev or eval/test; default: CLERK_READER_WRITTEN, eval/train/*.jsonl; "
        "--written with no file: mined questions only)",
    )  # fmt: skip
    reader.add_argument("--epochs", type=int, default=3, help="late-interaction: passes")
    reader.add_argument(
        "--steps", type=int, default=None, help="cross-encoder: training steps (default 2200)"
    )
    reader.add_argument(
        "--max-minutes", type=float, default=None,
        help="stop training after this long (default 20; cross-encoder 60)",
    )  # fmt: skip
    reader.add_argument("--seed", type=int, default=13)
    reader.add_argument("--json", action="store_true")
    reader.set_defaults(run=run_reader)

    status = sub.add_parser("status", help="what is indexed, and what failed")
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--settings", action="store_true", help="also list every setting (secrets masked)"
    )
    status.set_defaults(run=run_status)

    alive = sub.add_parser("health", help="exit 0 if a service did its job recently (for Docker)")
    alive.add_argument("service", choices=["slack", "email", "nightly"])
    alive.add_argument(
        "--max-age", type=float, default=600.0, help="seconds since the last heartbeat"
    )
    alive.set_defaults(run=run_health)

    evaluate = sub.add_parser(
        "eval", help="what users would see on question sets: outcomes per kind, risk-coverage"
    )
    evaluate.add_argument("files", nargs="+", type=Path, help="question sets (.jsonl)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--baselines", action="store_true", help="also BM25-only and dense-only")
    evaluate.add_argument("--plot", type=Path, help="write the risk-coverage curves here (SVG)")
    evaluate.add_argument(
        "--fit",
        action="store_true",
        help="fit the combiner on these (dev) questions and save bot/engine/combiner.json; "
        "never give it the frozen test set",
    )
    evaluate.add_argument(
        "--compare-reader",
        action="store_true",
        help="with the reader on, also run without it (the same index, the combiner alone)",
    )
    evaluate.set_defaults(run=run_eval)


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    from bot.requests.service import index_roots
    from indexer.embed import embedder_for
    from indexer.refresh import refresh

    roots = index_roots(settings, args.paths)
    embedder = embedder_for(settings.index)
    with _ProgressBar() as bar:
        summary = refresh(settings.index, roots, embedder, progress=bar.update)
    promises, kept = [], None
    if summary.published:
        from bot.promises.log import log_published_promises
        from bot.reader.keep import keep_published_passages

        promises = log_published_promises(settings)
        kept = keep_published_passages(settings)
    if args.json:
        print(json.dumps({**summary.to_dict(), "promises_logged": len(promises), "reader": kept}))
    else:
        print(
            f"{summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{summary.removed} removed, {summary.duplicates} duplicates; "
            f"{summary.chunks} passages indexed"
            + ("" if summary.published else " (no change, nothing published)")
        )
        if promises:
            print(f"{len(promises)} promise(s) in the papers logged as requests for officers")
        if kept:
            print(f"reader: {kept['projected']} passage(s) projected, {kept['dropped']} dropped")
        for failure in summary.failed:
            print(f"  failed: {failure['source']}: {failure['reason']}", file=sys.stderr)
    return 1 if summary.failed else 0


def run_encoder(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    if args.action == "tune":
        return _tune_encoder(args, settings)
    from indexer.embed import resolve_model_path
    from indexer.onnx_encoder import OnnxEmbedder, build

    encoder = OnnxEmbedder(
        settings.index.model, resolve_model_path(settings.index.model), settings.index.encoders_dir
    )
    built = build(encoder.model_dir, encoder.folder) if args.force else encoder.ensure_built()
    if args.json:
        print(json.dumps({"folder": str(encoder.folder), "name": encoder.name, **asdict(built)}))
    else:
        print(f"{encoder.name}: {encoder.folder} (built in {built.seconds:.1f} s)")
    return 0


def _tune_encoder(args: argparse.Namespace, settings: Settings) -> int:
    from bot.reader.tune import tune

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    written = _written(args.written, settings.engine.reader_written, say)
    folder = tune(settings, written, args.epochs, args.seed, say=say)
    if args.json:
        print(json.dumps({"folder": str(folder)}))
    else:
        print(f"tuned model in {folder}: set CLERK_MODEL={folder} and run `clerk index` again")
    return 0


def run_reader(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from bot.reader.build import build

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.recipe == "cross-encoder":
        from bot.reader.cross_build import STEPS, build_cross

        minutes = 60.0 if args.max_minutes is None else args.max_minutes
        built = build_cross(
            settings, args.questions, args.steps or STEPS, minutes * 60, args.seed, say=say,
            written=_written(args.written, settings.engine.reader_written, say),
        )  # fmt: skip
    else:
        minutes = 20.0 if args.max_minutes is None else args.max_minutes
        built = build(settings, args.questions, args.epochs, minutes * 60, args.seed, say=say)
    if args.json:
        print(json.dumps({"folder": str(settings.reader_folder), **asdict(built)}))
    else:
        print(
            f"reader built in {built.seconds['total']:.0f} s into {settings.reader_folder}: "
            f"{sum(v for k, v in built.pairs.items() if not k.startswith('questions'))} pairs, "
            f"held-out {built.held_out}, {built.graph} graph"
        )
    return 0


def _written(given: list[Path] | None, pattern: str, say) -> tuple[Path, ...]:
    """The written questions to train on: those given, else the files CLERK_READER_WRITTEN
    matches (none where the setting is empty or nothing matches)."""
    if given is not None:
        return tuple(given)
    found = tuple(Path(f) for f in sorted(glob.glob(pattern))) if pattern else ()
    say(f"written questions: {', '.join(map(str, found)) or f'none match {pattern!r}'}")
    return found


class _ProgressBar:
    """A progress bar on a terminal; silent when output goes to a file or CI log."""

    def __enter__(self):
        self._bars: dict[str, Any] = {}
        return self

    def update(self, stage: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=stage, unit="", leave=False)
        bar.total = total  # embedding's total grows while papers are still being read
        bar.n = done
        bar.refresh()

    def __exit__(self, *exc):
        for bar in self._bars.values():
            bar.close()


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from bot.engine.status import index_status, render_status

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


def run_health(args: argparse.Namespace, settings: Settings) -> int:
    from bot.health import check

    healthy, why = check(settings.home, args.service, args.max_age)
    print(why)
    return 0 if healthy else 1


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    from bot.engine import evaluate
    from bot.engine.answer import Answerer
    from bot.engine.combiner import fitted_path
    from indexer.embed import is_tuned

    questions = [q for path in args.files for q in evaluate.load_questions(path)]
    answerer = Answerer.from_settings(settings, fitting=args.fit)
    reports: dict = {}
    if args.fit:
        if any("test" in path.parts for path in args.files):
            raise ClerkError("refusing to fit on the frozen test set (eval/test/)")
        fitted = evaluate.fit(answerer, questions, " ".join(str(p) for p in args.files))
        reader = answerer.reader
        recipe = reader.manifest.recipe if reader is not None else None
        target = fitted_path(recipe, is_tuned(settings.index.model))
        fitted["combiner"].save(target)
        answerer = Answerer(settings, answerer.searcher, fitted["combiner"], answerer.reader)
        reports["fit"] = {"saved": str(target.name), **fitted["cross_validated"]}
    modes = ["hybrid", "bm25", "dense"] if args.baselines else ["hybrid"]
    for mode in modes:
        reports[mode] = evaluate.summarise(evaluate.run(answerer, questions, mode))
    if args.compare_reader and answerer.reader is not None:
        alone = Answerer(settings, answerer.searcher)
        reports["hybrid-no-reader"] = evaluate.summarise(evaluate.run(alone, questions))
    if args.plot:
        shown = [*modes, *(["hybrid-no-reader"] if "hybrid-no-reader" in reports else [])]
        curves = {mode: reports[mode]["risk_coverage"] for mode in shown}
        args.plot.write_text(evaluate.risk_coverage_svg(curves), encoding="utf-8")
    print(json.dumps(reports, indent=2) if args.json else evaluate.render_report(reports))
    return 0
