"""Set-up the channel benchmarks share: import paths (the repository, and tests/ for the loopback
servers and harnesses), and a data directory indexed from a small real subset of the shared corpus.

Import it before `bot`, `indexer` or a test helper: importing it puts them on sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bot.settings import Settings  # noqa: E402
from indexer.embed import embedder_for  # noqa: E402
from indexer.refresh import refresh  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
SUBSET = ("kent/cabinet/2025-03-13", "kent/full_council/2025-01-09", "bradford/area-committee")


def build_home(home: Path) -> Settings:
    """Index SUBSET of the shared corpus into `home`; the settings that point at it."""
    settings = Settings.from_env({}, CLERK_HOME=home, CLERK_CORPUS=CORPUS)
    roots = [CORPUS / part for part in SUBSET]
    summary = refresh(settings.index, roots, embedder_for(settings.index))
    print(f"indexed {summary.added} papers, {summary.chunks} chunks")
    return settings
