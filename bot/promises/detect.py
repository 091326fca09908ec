"""Promises in the papers: sentences in which someone undertakes to give information later.

"Further information will be provided", "a written answer will be sent", "officers to circulate
the figures", "ACTION: ..." are promises; "Members noted the information provided" and "the
report was circulated" are not (done, not owed). Whether a sentence promises is the learnt
classifier's call (`bot.promises.model`, trained by `python -m bot.promises.train`, measured by
`python -m bot.promises.evaluate`), from its words and its sentence vector (`vector`: one
sentence's vector from `bot.promises.model.promise_encoder`, asked only when the words leave the
answer open); who made it and to whom are read here where the text says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.promises.model import SentenceVector, default_model

_BY_PERSON = (
    r"(?:officers?|(?:my |our )?officials|the officer|he|she|they|we|I|"
    r"the (?:Cabinet Member|Leader|Director|Chairman|Chair|Head of [A-Z][a-z]+|"
    r"Corporate Director|Executive Director|Deputy Leader)|"
    r"(?-i:(?:Mr|Mrs|Ms|Miss|Dr|Cllr|Councillor) [A-Z][A-Za-z'-]+|[A-Z][a-z]+ [A-Z][A-Za-z'-]+))"
)

# Done, not owed: whatever the classifier makes of its words, a sentence that reports the
# giving as done ("had been circulated", "was provided") or asks a question promises nothing.
_GIVEN = (
    r"(?:provided|circulated|sent|supplied|shared|forwarded|given|made available|reported back|"
    r"distributed|e-?mailed|written|issued|confirmed|followed up)"
)
_DONE = (
    re.compile(rf"\b(?:has|have|had) (?:now |already |previously )?been {_GIVEN}\b", re.I),
    re.compile(rf"\bwas {_GIVEN}\b(?![^.]*\b(?:will|would)\b)", re.I),
    re.compile(r"\?\s*$"),
)
_TO_WHOM = re.compile(
    r"\bto (?P<whom>(?:all )?(?:Members|Member|Councillors|the (?:Committee|Member|Members|"
    r"Councillor|questioner|Cabinet|Council|Panel|Board))|(?:Mr|Mrs|Ms|Miss|Dr|Cllr|Councillor) "
    r"[A-Z][A-Za-z'-]+(?: [A-Z][A-Za-z'-]+)?)\b(?!['’]s)"
)
_BY_WHOM = re.compile(
    rf"\b(?P<who>{_BY_PERSON})\b(?= (?:will|would|shall|agreed|undertook|promised|offered|said|"
    rf"confirmed|to ))"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'“])")


@dataclass(frozen=True)
class PromiseSentence:
    """One sentence promising information later, and what it says about who and to whom."""

    sentence: str
    made_by: str | None = None
    made_to: str | None = None


def is_promise(sentence: str, vector: SentenceVector) -> bool:
    """Whether this sentence undertakes to give information later."""
    text = " ".join(sentence.split())
    # the veto first: it is cheap, and a sentence it settles need not be encoded
    return not any(p.search(text) for p in _DONE) and default_model().is_promise(text, vector)


def split_sentences(text: str) -> list[str]:
    """Sentences (and list lines) of a passage, whitespace tidied."""
    out = []
    for line in re.split(
        r"\n\s*\n|\n(?=\s*(?:[-•*]|\(?[a-z0-9]{1,3}[.)]|action\b))", text, flags=re.I
    ):
        for sentence in _SENTENCE_END.split(" ".join(line.split())):
            if len(sentence) >= 12:
                out.append(sentence.strip())
    return out


def find_promises(text: str, vector: SentenceVector) -> list[PromiseSentence]:
    """Every promise in a passage, with who made it and to whom where the sentence says."""
    found = []
    for sentence in split_sentences(text):
        if is_promise(sentence, vector):
            by, to = _BY_WHOM.search(sentence), _TO_WHOM.search(sentence)
            found.append(
                PromiseSentence(
                    sentence,
                    made_by=_named(by.group("who")) if by else None,
                    made_to=to.group("whom") if to else None,
                )
            )
    return found


def _named(who: str) -> str | None:
    """A person or office; pronouns and plain "officers" name nobody in particular."""
    return None if who.lower() in {"he", "she", "they", "we", "i"} else who
