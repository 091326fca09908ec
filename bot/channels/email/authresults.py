"""What the receiving mail server found about a message's sender (RFC 8601 Authentication-Results).

Only a failure counts against a message: its receiving server found DMARC failing for the From
domain, or, where it reached no DMARC verdict, SPF failing or soft-failing. A DMARC verdict about
another From domain than the one Clerk read is a failure too: the server and Clerk disagree on
who the message is from. Every Authentication-Results header is read; a sender can add headers
of its own, but only to fail itself, since a forged pass cannot hide the real server's fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_PAIR = re.compile(r'([A-Za-z0-9_.\-/]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s";]+)')
SPF_FAILURES = frozenset({"fail", "softfail"})
DMARC_VERDICTS = frozenset({"pass", "fail"})  # none, temperror, permerror: no verdict


@dataclass(frozen=True)
class AuthResult:
    """One `method=result` statement and its properties (`header.from=kent.gov.uk`)."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.properties if key == name), None)


def parse_results(value: str) -> tuple[AuthResult, ...]:
    """The results in one Authentication-Results header value (comments and the server's name
    left out; Exchange Online, which writes no server name, is read the same way)."""
    results = []
    for clause in _clauses(value):
        pairs = [(k.lower(), v.strip('"')) for k, v in _PAIR.findall(clause)]
        if not pairs:
            continue  # the authserv-id, or `none`
        (method, result), properties = pairs[0], pairs[1:]
        results.append(AuthResult(method.split("/")[0], result.lower(), tuple(properties)))
    return tuple(results)


def authentication_failure(headers: Iterable[str], from_domain: str) -> str | None:
    """Why these Authentication-Results headers say the From address is not the sender's own,
    or None when none says so."""
    for header in headers:
        failure = _failure(parse_results(header), from_domain.lower())
        if failure:
            return failure
    return None


def _failure(results: tuple[AuthResult, ...], from_domain: str) -> str | None:
    dmarc = [r for r in results if r.method == "dmarc" and r.result in DMARC_VERDICTS]
    for result in dmarc:
        if result.result == "fail":
            return "dmarc=fail"
        checked = (result.get("header.from") or "").lower()
        if checked and checked != from_domain:
            return "dmarc checked another From domain"
    if dmarc:
        return None
    for result in results:
        if result.method == "spf" and result.result in SPF_FAILURES:
            return f"spf={result.result}"
    return None


def _clauses(value: str) -> list[str]:
    """The `;`-separated parts of a header value, with (comments) removed and "quoted strings"
    kept whole (a reason="a; b" is one part)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if not depth:
                current.append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                current.append(char)
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif quoted:
            current.append(char)
            quoted = char != '"'
        elif char == "(":
            depth = 1
            current.append(" ")
        elif char == ";":
            parts.append("".join(current))
            current = []
        else:
            quoted = char == '"'
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]
