"""Promises in the papers: sentences in which someone undertakes to give information later.

"Further information will be provided", "a written answer will be sent", "officers to circulate
the figures", "ACTION: ..." are promises; "Members noted the information provided" and "the
report was circulated" are not (done, not owed). Pure text rules, so that what counts as a
promise can be read here and measured (eval/promises/, `python -m bot.promises.evaluate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What is promised: information of some kind.
_THING = (
    r"(?:further |more |additional |full |detailed |a |the |an |any |written |separate |"
    r"specific |up-to-date |updated |)"
    r"(?:information|answer|response|reply|details?|figures?|data|breakdown|briefing|note|update|"
    r"clarification|explanation|report|analysis|list|numbers?|costs?|statistics|summary|"
    r"feedback|confirmation|paper|message|letter|e-?mail|link)s?"
)
# Giving it.
_GIVE = (
    r"(?:provide[ds]?|circulate[ds]?|sen[dt]|supplie[ds]|supply|share[ds]?|forward(?:ed)?|"
    r"give[ns]?|made available|reported back|report back|distributed|distribute|"
    r"e-?mailed|e-?mail|write|written|issued|confirm(?:ed)?|follow(?:ed)? up)"
)
# "could" is kept: minutes record offers that way ("Further information could be provided to
# Members"); "should" and "can" are not: they recommend or describe.
_FUTURE = r"(?:will|would|shall|could|agreed to|undertook to|promised to)"
# A short stretch of words that does not turn the sentence into a description of something else
# ("information regarding what services will be provided" promises nothing).
_GAP = r"(?:(?!\b(?:what|which|how|whether|services?)\b)[^.;:?]){0,40}?"
_BY_PERSON = (
    r"(?:officers?|(?:my |our )?officials|the officer|he|she|they|we|I|"
    r"the (?:Cabinet Member|Leader|Director|Chairman|Chair|Head of [A-Z][a-z]+|"
    r"Corporate Director|Executive Director|Deputy Leader)|"
    r"(?-i:(?:Mr|Mrs|Ms|Miss|Dr|Cllr|Councillor) [A-Z][A-Za-z'-]+|[A-Z][a-z]+ [A-Z][A-Za-z'-]+))"
)

_UNDERTAKES = (
    r"(?:will|would|shall|agreed to|undertook to|promised to|offered to|to|"
    r"(?:was|were|is|are|would be) (?:happy|willing|pleased) to)"
)
_WORDS = r"(?:[\w'’-]+,? ){0,8}?"  # "look at this data again and", "come back to the panel"
PATTERNS = (
    # "Further information will be provided to Members", "a written answer would be sent"
    re.compile(rf"\b{_THING}\b{_GAP}\b{_FUTURE} be {_GIVE}\b", re.IGNORECASE),
    # "officers will circulate the links", "Ms Coombs offered to come back to the panel"
    re.compile(
        rf"\b{_BY_PERSON}\b {_UNDERTAKES} {_WORDS}(?:circulate|write to|report back|come back|"
        rf"follow up|respond to|reply to)\b",
        re.IGNORECASE,
    ),
    # "Mr Smith agreed to provide a breakdown", "I will share further information later"
    re.compile(
        rf"\b{_BY_PERSON}\b {_UNDERTAKES} {_WORDS}(?:provide|send|supply|share|forward|give|"
        rf"e-?mail|confirm)\b {_WORDS}{_THING}\b",
        re.IGNORECASE,
    ),
    # "... and offered to come back to the panel with the data": the verb names a person's offer
    re.compile(
        rf"\b(?:offered|undertook|promised) to {_WORDS}(?:provide|circulate|send|share|supply|"
        rf"come back|report back|follow up|write to)\b"
    ),
    # "a written answer will follow", "figures to follow"
    re.compile(rf"\b{_THING}\b{_GAP}\b(?:will|would|to) follow\b", re.IGNORECASE),
    # "ACTION: officers to ...", "Action - circulate ..."
    re.compile(r"^\s*action(?:\s*:|\s+-|\s+point\s*:)", re.IGNORECASE),
    # "a detailed update would be brought back to Cabinet in due course", "that a further report
    # come to the Committee", "will return to the Committee": a one-off report owed to a body
    re.compile(
        rf"\b(?:will|would|shall|to|that|intention to|agreed? (?:that|to))\s+{_WORDS}(?:be )?"
        r"(?:(?:brought|bought|come|coming|returned?|bring|brings|report(?:ed)?|presented?|"
        r"considered)(?: back)?|submitted) (?:to|by|at|before) (?:a |the |an )?"
        r"(?:future|later|next|subsequent)?\s?(?:meeting|Members|Panel|(?:[A-Z][\w,]*\s){0,6}(?:Committee|Cabinet|"
        r"Council|Board))\b(?![^.]*\b(?:in|every) (?:\d+|twelve|six) months)"
    ),
    # "changes will be communicated to Members in writing", "published and sent to all Members"
    re.compile(
        rf"\b{_FUTURE} be {_WORDS}(?:communicated|sent|circulated|provided|shared|emailed|given) "
        r"to (?:all )?(?:Members|Member|Councillors|the (?:Panel|Committee|questioner))\b",
        re.IGNORECASE,
    ),
    # "Cabinet will receive a verbal update", "You will receive under separate cover a letter"
    re.compile(
        rf"\b(?:will|would) receive (?:a |an |the )?(?:verbal |written |further |separate )?"
        rf"(?:{_THING}|under separate cover)",
        re.IGNORECASE,
    ),
    # "I will be writing separately to", "I have asked the Highways Manager to contact you"
    re.compile(r"\b(?:will be writing|will write) (?:separately )?to\b", re.IGNORECASE),
    re.compile(r"\basked [^.]{0,60}\bto (?:contact|write to|respond to|reply to) you\b"),
    # "JG will communicate the slides to all members": initials name a person in action notes
    re.compile(
        r"\b(?-i:[A-Z]{2,3}) (?:will|to) (?:communicate|circulate|send|share|provide|forward)\b"
    ),
    # "PROVIDE a report to the Committee", "AGREE to present further information": resolutions
    re.compile(rf"^(?:PROVIDE|CIRCULATE|SHARE|AGREE to (?:present|provide|circulate)) {_THING}"),
    # "requested that a copy of the statement be shared with the minutes"
    re.compile(
        r"\b(?:requested|asked|agreed) that\b[^.]{0,120}\bbe (?:shared|circulated|provided|sent)"
        r"\b"
    ),
    # "to be circulated to Members", "figures to be provided outside the meeting"
    re.compile(r"\bto be (?:circulated|reported back|e-?mailed)\b", re.IGNORECASE),
    re.compile(rf"\b{_THING}\b{_GAP}\bto be {_GIVE}\b", re.IGNORECASE),
)
# Done, not owed: the sentence reports that it already happened or was merely noted.
NOT_PROMISES = (
    re.compile(
        r"\b(?:noted|received|considered|welcomed) the\b[^.]{0,40}\b(?:provided|circulated)"
    ),
    re.compile(rf"\b(?:has|have|had) (?:now |already |previously )?been {_GIVE}\b", re.IGNORECASE),
    re.compile(r"\bas (?:circulated|provided|set out|tabled)\b", re.IGNORECASE),
    re.compile(rf"\bwas {_GIVE}\b(?![^.]*\b(?:will|would)\b)", re.IGNORECASE),
    re.compile(r"\bcontinues? to be\b", re.IGNORECASE),  # what goes on, not what is owed
    re.compile(r"\?\s*$"),  # a question asks; it does not promise
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


def is_promise(sentence: str) -> bool:
    """Whether this sentence undertakes to give information later."""
    text = " ".join(sentence.split())
    if not any(p.search(text) for p in PATTERNS):
        return False
    return not any(p.search(text) for p in NOT_PROMISES)


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


def find_promises(text: str) -> list[PromiseSentence]:
    """Every promise in a passage, with who made it and to whom where the sentence says."""
    found = []
    for sentence in split_sentences(text):
        if is_promise(sentence):
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
