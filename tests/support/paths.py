"""Where the tests find the repository, its sample corpus and the payload fixtures."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"
FIXTURES = REPO / "tests" / "fixtures"
