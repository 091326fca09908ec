"""Read a paper into pages of clean text: PDF page by page, ModernGov HTML, plain text.

Cleaning removes what the reader never wanted to search (running headers and footers, page
numbers, hyphenation at line ends) and keeps every figure.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from pathlib import Path

from indexer.errors import DocumentError
from indexer.types import Page, Paper

log = logging.getLogger(__name__)

MIN_DOCUMENT_CHARS = 40  # less than this over a whole PDF: scanned images, nothing to search
_PAGE_NUMBER = re.compile(r"^(page\s*)?\d{1,4}(\s*(of|/)\s*\d{1,4})?$", re.IGNORECASE)
_HYPHEN_BREAK = re.compile(r"(\w)-\n(?=[a-z])")
_LEADER_DOTS = re.compile(r"(?:[.…_]\s?){5,}")  # form fields and contents-page leaders
_RANGE_BREAK = re.compile(r"(\d)([-/]) ?\n ?(?=\d)")  # "2022-\n23" is the year range 2022-23


def read_pages(paper: Paper) -> list[Page]:
    """The paper's pages, or DocumentError with a reason a person can act on."""
    data = paper.path.read_bytes()
    if not data.strip():
        raise DocumentError("empty file")
    if paper.kind == "pdf":
        return read_pdf(paper.path)
    text = decode_text(data)
    if paper.kind == "html" or _looks_like_html(text):
        text = html_to_text(text)
    text = clean_text(text)
    if len(text.strip()) < MIN_DOCUMENT_CHARS:
        raise DocumentError("no text to index")
    return [Page(None, text)]


def read_pdf(path: Path) -> list[Page]:
    """Extract each page with pypdf, then strip running headers and footers."""
    import pypdf
    from pypdf.errors import PdfReadError

    if not path.read_bytes()[:1024].lstrip().startswith(b"%PDF"):
        raise DocumentError("not a PDF (no %PDF header; perhaps an HTML error page)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = pypdf.PdfReader(str(path), strict=False)
            if reader.is_encrypted and not _try_empty_password(reader):
                raise DocumentError("encrypted PDF (needs a password)")
            raw_pages = [_extract_page(reader, i) for i in range(len(reader.pages))]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise DocumentError(f"corrupt or truncated PDF ({type(exc).__name__}: {exc})") from exc
    except (
        Exception
    ) as exc:  # pypdf raises a wide range on hostile files; one file must not stop a run
        raise DocumentError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc
    if not raw_pages:
        raise DocumentError("PDF has no pages")
    cleaned = strip_running_lines(raw_pages)
    pages = [Page(i + 1, clean_text(text)) for i, text in enumerate(cleaned)]
    if sum(len(p.text.strip()) for p in pages) < MIN_DOCUMENT_CHARS:
        raise DocumentError("no extractable text (scanned or image-only PDF)")
    return pages


def _try_empty_password(reader) -> bool:
    try:
        return bool(reader.decrypt(""))
    except Exception:  # pypdf raises NotImplementedError/DependencyError on unsupported crypto
        return False


def _extract_page(reader, index: int) -> str:
    try:
        return reader.pages[index].extract_text() or ""
    except Exception as exc:  # one broken page must not lose the rest of the document
        log.warning("page %d: text extraction failed: %s", index + 1, exc)
        return ""


def strip_running_lines(pages: list[str]) -> list[str]:
    """Drop lines that repeat at the top or bottom of most pages (headers, footers)."""
    if len(pages) < 4:
        return pages
    edge_counts: Counter[str] = Counter()
    for text in pages:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        edges = {_edge_key(ln) for ln in lines[:3] + lines[-3:]}
        edge_counts.update(edges)
    threshold = max(3, len(pages) // 2)
    running = {key for key, n in edge_counts.items() if n >= threshold and key}
    if not running:
        return pages
    out = []
    for text in pages:
        lines = text.splitlines()
        keep = [ln for ln in lines if _edge_key(ln.strip()) not in running]
        out.append("\n".join(keep))
    return out


def _edge_key(line: str) -> str:
    # Page numbers inside a running footer change on every page; compare without digits.
    return re.sub(r"\d+", "#", line.strip().lower())


def clean_text(text: str) -> str:
    """Normalise whitespace, join hyphenated words, drop lone page numbers; keep all figures."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = text.replace("\x00", "").replace("\ufffd", "")
    text = _HYPHEN_BREAK.sub(r"\1", text)
    text = _RANGE_BREAK.sub(r"\1\2", text)
    text = _LEADER_DOTS.sub(" … ", text)
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"[ \t\f\v]+", " ", line).strip()
        if _PAGE_NUMBER.match(line):
            continue
        lines.append(line)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, which every byte string decodes in."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.info("not UTF-8; reading as Windows-1252")
        return data.decode("cp1252", errors="replace")


def _looks_like_html(text: str) -> bool:
    head = text[:500].lower()
    return "<html" in head or "<!doctype html" in head


def html_to_text(html: str) -> str:
    """Text of a web page, one block per line; for ModernGov pages only the content area."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "head", "nav", "footer", "form"]):
        tag.decompose()
    content = soup.select_one("div.mgContent, #modgov, main, article") or soup.body or soup
    for br in content.find_all("br"):
        br.replace_with("\n")
    return content.get_text("\n")
