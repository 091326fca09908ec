"""Lexical tokens: the same words give the same tokens, however many threads ask at once."""

from __future__ import annotations

import itertools
import sys
import threading

import snowballstemmer

from indexer.lexical import tokenize


def test_words_stem_the_same_when_several_questions_are_answered_at_once():
    # The Slack workers answer several questions at once; a stemmer shared between threads
    # raised IndexError or returned another thread's word. Made-up words, so none is cached.
    stems = ("blast", "crebb", "drind", "frolt", "glumm", "hwern", "jash", "klock", "mild")
    ends = ("ing", "ings", "ed", "edly", "ness", "ies", "ational", "ization", "ful", "ement")
    words = [a + b + c for a, b, c in itertools.product("bcdfgpstvw", stems, ends)]
    reference = snowballstemmer.stemmer("english")
    expected = {w: [reference.stemWord(w)] for w in words}
    found: dict[str, list[str]] = {}
    errors: list[str] = []

    def work(part: list[str]) -> None:
        try:
            for word in part:
                found[word] = tokenize(word)
        except Exception as exc:  # collected: the assertion below names it
            errors.append(type(exc).__name__)

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to meet the race
    try:
        threads = [threading.Thread(target=work, args=(words[n::8],)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert errors == []
    assert found == expected
