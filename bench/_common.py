"""Set-up the benchmarks and fault runs share: import paths (the repository, and tests/ and
tests/support/ for the loopback servers and harnesses), a data directory indexed from a small real
subset of the shared corpus, the command line of this checkout's `clerk`, percentiles, and the
peak memory of a process with its children.

Import it before `bot`, `indexer` or a test helper: importing it puts them on sys.path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "support"))

from bot.settings import Settings  # noqa: E402
from indexer.embed import embedder_for  # noqa: E402
from indexer.refresh import refresh  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
SUBSET = ("kent/cabinet/2025-03-13", "kent/full_council/2025-01-09", "bradford/area-committee")

QUESTIONS = (
    "What did the area committee resolve about protecting vulnerable children from exploitation?",
    "What was decided about devolution and local government reorganisation?",
    "Who chaired the County Council meeting in January 2025?",
    "What did the Cabinet say about the council's budget position?",
    "What is the position on special educational needs and disabilities?",
    "What did the committee decide about parking charges at the leisure centre?",  # near miss
    "What questions were asked by members at full council?",
    "What did the report say about county lines and child criminal exploitation?",
    "When is the next bin collection in my ward?",  # not in the papers
    "What motions were debated at the County Council?",
)


def build_home(home: Path) -> Settings:
    """Index SUBSET of the shared corpus into `home`; the settings that point at it."""
    settings = Settings.from_env({}, CLERK_HOME=home, CLERK_CORPUS=CORPUS)
    roots = [CORPUS / part for part in SUBSET]
    summary = refresh(settings.index, roots, embedder_for(settings.index))
    print(f"indexed {summary.added} papers, {summary.chunks} chunks")
    return settings


def copy_corpus(target: Path, corpus: Path = CORPUS, parts: Sequence[str] = ()) -> Path:
    """A private, writable copy of the corpus (or of some of its folders) that a run may change."""
    for part in parts or ["."]:
        shutil.copytree(corpus / part, target / part, dirs_exist_ok=True)
    for folder in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)  # the shared corpus is read-only; its copy must not be
    return target


def index_subset(home: Path) -> None:
    """Index SUBSET of the shared corpus into `home` with a `clerk index` process."""
    roots = [str(CORPUS / part) for part in SUBSET]
    subprocess.run(clerk("index", *roots), env=clerk_env(home), cwd=REPO, check=True)


@contextmanager
def scratch_home(prefix: str, existing: Path | None = None) -> Iterator[Path]:
    """A throwaway CLERK_HOME for one run: a copy of an existing one (its requests and state
    must not stay behind), or a fresh index of the small subset."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        home = Path(tmp) / "home"
        if existing:
            shutil.copytree(existing, home, symlinks=True)
        else:
            index_subset(home)
        yield home


def clerk(*args: str) -> list[str]:
    """The command line of this checkout's `clerk`, at low priority (the machine is shared)."""
    return ["nice", "-n", "10", sys.executable, "-m", "bot.cli.main", *args]


def clerk_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a `clerk` child runs with: this checkout, `home`, offline model."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "SLACK_"))}
    return base | {
        "PYTHONPATH": str(REPO),
        "CLERK_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **extra,
    }


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class TreePeak:
    """The peak resident memory of a process and all its descendants together (summed RSS,
    which counts pages they share once per process: an upper bound), sampled every 50 ms."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak_mb = 0.0
        self.most_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        while not self._stop.is_set():
            tree = _descendants(self.pid)
            pages = sum(_resident_pages(pid) for pid in tree)
            self.peak_mb = max(self.peak_mb, pages * page_mb)
            self.most_processes = max(self.most_processes, len(tree))
            self._stop.wait(self.interval)


def _descendants(root: int) -> list[int]:
    """`root` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _resident_pages(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
