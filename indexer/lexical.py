"""The words BM25 indexes and searches: one tokenizer for passages and questions.

Tokens keep what councillors type: decision numbers ("24/00109"), money ("2.149m"), years
("2025-26") and acronyms ("LEVI"), alongside their parts, so "24/00109" and "00109" both match.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import snowballstemmer

# Bumped whenever tokenize() changes: a stored BM25 index with another version is rebuilt from
# the chunk texts on load (seconds), without re-embedding anything.
TOKENIZER_VERSION = 3
# Words, numbers with thousands separators, and compounds such as 24/00109, 2025-26, 2.149m.
_TOKEN = re.compile(r"[a-z0-9]+(?:[./-][a-z0-9]+|,[0-9]{3}(?![0-9]))*")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "whats",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "tell",
        "please",
        "know",
        "aren",
        "couldn",
        "didn",
        "doesn",
        "don",
        "hadn",
        "hasn",
        "haven",
        "isn",
        "mustn",
        "shan",
        "shouldn",
        "wasn",
        "weren",
        "won",
        "wouldn",
    ]
)


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    # Snowball (Porter 2) folds "funded"/"funding", "resolve"/"resolved"; numbers pass through.
    return _stemmer().stemWord(token) if token.isalpha() and len(token) > 3 else token


_STEMMERS = threading.local()


def _stemmer():
    """This thread's Snowball stemmer: one keeps the word it is stemming in itself, so threads
    sharing one (the Slack workers answering at once) mangle each other's words."""
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = snowballstemmer.stemmer("english")
    return stemmer


_ORDINAL = re.compile(r"(\d{1,2})(st|nd|rd|th)")
_YEARS = re.compile(r"(20\d\d|19\d\d)[-/](\d{4}|\d{2})")
_DECISION = re.compile(r"(\d{2})[-/](\d{5})")
_MONEY = re.compile(r"\d+\.\d+[a-z]+")
_PART_SEPARATORS = re.compile(r"[./-]")


def canonical(token: str) -> str:
    """One spelling for a figure written several ways: 2025/2026 -> 2025-26; 27,000 -> 27000."""
    if token.isalpha():  # most tokens: words, which have one spelling
        return token
    token = token.replace(",", "")
    ordinal = _ORDINAL.fullmatch(token)
    if ordinal:
        return ordinal.group(1)
    years = _YEARS.fullmatch(token)
    if years:
        first, second = years.groups()
        return f"{first}-{second[-2:]}"
    decision = _DECISION.fullmatch(token)
    return f"{decision.group(1)}/{decision.group(2)}" if decision else token


# Councillors' shorthand, spelled out so that it meets the papers' wording.
_SHORTHAND = (
    (re.compile(r"\blib ?dems?\b"), "liberal democrats"),
    (re.compile(r"\bcllrs?\b"), "councillor"),
    (re.compile(r"\bquarter ([1-4])\b"), r"q\1"),
)


def tokenize(text: str) -> list[str]:
    """Lower-case, stemmed tokens without stop words; compounds also give their parts."""
    text = text.lower().replace("£", " ")
    for pattern, replacement in _SHORTHAND:
        text = pattern.sub(replacement, text)
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        token = canonical(match.group())
        if token in STOPWORDS or len(token) < 2 and not token.isdigit():
            continue
        tokens.append(_stem(token))
        if _MONEY.fullmatch(token):  # money such as 2.149m: also 2.149
            tokens.append(token.rstrip("abcdefghijklmnopqrstuvwxyz"))
        elif any(sep in token for sep in "./-"):
            parts = [p for p in _PART_SEPARATORS.split(token) if p and p not in STOPWORDS]
            tokens.extend(_stem(p) for p in parts if len(parts) > 1)
    return tokens


def passage_text(committee: str, heading: str, text: str) -> str:
    """What BM25 indexes for a passage: its committee and heading context count as its words."""
    return f"{committee} {heading} {text}"
