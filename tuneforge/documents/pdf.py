"""PDF → clean text per page, with pypdf (pure Python, no system libraries).

    doc = parse_pdf("report.pdf", data)        # one Section per page with text, page_number 1-based

Cleaning, in order:
1. Text comes from pypdf's default ("plain") extraction, which follows the content stream. We do not use
   layout mode: it was 1.1-1.7x slower on our sample PDFs, and it renders a page as a fixed-width grid,
   so a two-column page comes out with both columns side by side on every line (interleaved text).
   Plain mode keeps each table row on its own line with the cells separated by spaces; rows are short
   lines, so step 4 keeps them as separate lines. Rows stay readable; column boundaries are lost.
2. Running headers and footers are dropped: a line among the first or last `EDGE_LINES` lines of a page
   whose text, with every run of digits read as one digit, is in that zone on at least
   `RUNNING_FRACTION` of the pages (and `RUNNING_MIN_PAGES`). That catches "Page 3 of 427", dates and
   titles. Only edge lines are dropped, so the same text inside a page body stays.
3. Line-end hyphens: "infor-" + "mation" becomes "information" only when the document uses
   "information" elsewhere and never "infor-mation". Otherwise the hyphen stays ("self-regulatory"):
   browsers and word processors do not hyphenate by default, so most line-end hyphens in such PDFs
   belong to compounds (all 41 in the Exchange Act sample do).
4. Lines are joined into paragraphs with spaces. A line shorter than `SHORT_LINE` of the document's
   typical (90th-percentile) line length ends its paragraph (last lines, headings, table rows), as does
   a list marker ("(a)", "•", "1.") after a line ending in . : ; ! or ?; a line ending in "word-" before
   a lowercase word never does. Whitespace runs become one space,
   and ligatures (ﬁ, ﬂ, ...) are spelled out.

Limits: no OCR (pages that are only images have no text; a PDF with none fails); pypdf is slow on
PDFs that draw one glyph per operator, as Chromium's do (~30 pages/s on the 427-page sample); reading
order is the content stream's. A page whose extraction raises is left out with a warning. A body line
at a page edge that repeats, digits aside, on 40% of the pages ("Section 3 continues") is dropped too.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from tuneforge.documents.document import DocumentError, DocumentFormat, ParsedDocument, Section

if TYPE_CHECKING:
    from pypdf import PdfReader

EDGE_LINES = 3  # headers/footers are the first or last lines (Chromium draws both at the end of the stream)
RUNNING_FRACTION = 0.4  # not 0.5: books alternate left/right running heads, each on half the pages
RUNNING_MIN_PAGES = 3  # fewer pages give no evidence that a line repeats
SHORT_LINE = 0.75  # a line under 75% of the typical width ends a paragraph
TYPICAL_PERCENTILE = 0.9  # the typical full line: most lines of prose are full, so the 90th percentile is one

_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
_INVISIBLE = {"\u00ad": None, "\u200b": None, "\ufeff": None}  # soft hyphen, zero-width space, BOM
_REMOVE = str.maketrans(_LIGATURES | _INVISIBLE)
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_HYPHEN_END = re.compile(r"([^\W\d_]+(?:-[^\W\d_]+)*)-$")
_WORD_START = re.compile(r"[^\W\d_]+")
_TERMINAL_END = re.compile(r"[.:;!?][\"'”’)\]]*$")
_LIST_START = re.compile(r"(\(\w{1,5}\)|[•▪◦‣∙·●○■□►–—*-]\s|\d{1,3}[.)]\s|§)")


def parse_pdf(name: str, data: bytes) -> ParsedDocument:
    """Parse a PDF (see module docstring). Raises DocumentError for encrypted, corrupt or textless files."""
    reader = _open(data)
    try:
        page_count = len(reader.pages)
    except Exception as exc:  # pypdf raises many types on broken page trees
        raise DocumentError(f"corrupt PDF: cannot read its page tree ({exc})") from exc
    if page_count == 0:
        raise DocumentError("the PDF has no pages")
    pages: list[list[str]] = []
    warnings: list[str] = []
    for number in range(1, page_count + 1):
        try:
            text = reader.pages[number - 1].extract_text()
        except Exception as exc:  # a broken content stream costs that page, not the document
            warnings.append(f"page {number}: no text could be extracted ({type(exc).__name__}: {exc})")
            text = ""
        pages.append(_lines(text))
    if len(warnings) == page_count:
        raise DocumentError(f"corrupt PDF: no page could be read ({warnings[0]})")

    pages = drop_running_lines(pages)
    vocabulary = {word.casefold() for lines in pages for line in lines for word in _WORD.findall(line)}
    lengths = sorted(len(line) for lines in pages for line in lines)
    typical = lengths[int(TYPICAL_PERCENTILE * (len(lengths) - 1))] if lengths else 0
    sections: list[Section] = []
    previous_number = 0
    for number, lines in enumerate(pages, start=1):
        text = join_lines(lines, vocabulary, typical)
        if not text:
            continue
        # A sentence that runs over a page break: join the pages with a soft break (read as a space).
        continues = bool(sections) and previous_number == number - 1 and not _TERMINAL_END.search(sections[-1].text)
        sections.append(Section(text, page_number=number, continues_previous=continues))
        previous_number = number
    if not sections:
        raise DocumentError(
            f"no extractable text in {page_count} page(s): a scanned PDF needs OCR, which tuneforge does not do"
        )
    return ParsedDocument(name, DocumentFormat.PDF, tuple(sections), page_count=page_count, warnings=tuple(warnings))


def _open(data: bytes) -> PdfReader:
    from pypdf import PasswordType, PdfReader  # imported here: importing tuneforge.documents stays cheap
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:  # PdfReadError, PdfStreamError, and plain ValueError/KeyError on junk
        raise DocumentError(f"corrupt PDF: {exc}") from exc
    if reader.is_encrypted:
        try:
            # Many PDFs are encrypted only to restrict printing or copying: their user password is empty.
            result = reader.decrypt("")
        except DependencyError as exc:
            raise DocumentError(
                f"encrypted PDF that needs the `cryptography` package to decrypt ({exc}): install pypdf[crypto]"
            ) from exc
        except Exception as exc:
            raise DocumentError(f"corrupt PDF: its encryption dictionary cannot be read ({exc})") from exc
        if result == PasswordType.NOT_DECRYPTED:
            raise DocumentError("encrypted PDF that needs a password: upload a copy without one")
    return reader


def _lines(text: str) -> list[str]:
    text = text.replace("\u00ad\n", "")  # a soft hyphen at a line end marks a hyphenated word for sure
    return [line for line in (_SPACES.sub(" ", raw.translate(_REMOVE)).strip() for raw in text.splitlines()) if line]


def drop_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Drop running headers and footers (module docstring, step 2) from each page's lines."""
    if len(pages) < RUNNING_MIN_PAGES:
        return pages
    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update({_running_key(line) for line in lines[:EDGE_LINES] + lines[-EDGE_LINES:]})
    needed = max(RUNNING_MIN_PAGES, math.ceil(RUNNING_FRACTION * len(pages)))
    running = {key for key, count in counts.items() if count >= needed}
    if not running:
        return pages
    cleaned = []
    for lines in pages:
        edge = set(range(min(EDGE_LINES, len(lines)))) | set(range(max(len(lines) - EDGE_LINES, 0), len(lines)))
        cleaned.append([line for i, line in enumerate(lines) if not (i in edge and _running_key(line) in running)])
    return cleaned


def _running_key(line: str) -> str:
    return _DIGITS.sub("#", line).casefold()


def join_lines(lines: list[str], vocabulary: set[str], typical: int) -> str:
    """Join a page's lines into paragraphs separated by blank lines (module docstring, steps 3-4)."""
    paragraphs: list[str] = []
    current = ""
    for index, line in enumerate(lines):
        if index == 0:
            current = line
            continue
        previous = lines[index - 1]
        hyphenated = _HYPHEN_END.search(previous) is not None and line[0].islower()
        ends = len(previous) < SHORT_LINE * typical or (
            _TERMINAL_END.search(previous) is not None and _LIST_START.match(line) is not None
        )
        if ends and not hyphenated:
            paragraphs.append(current)
            current = line
        else:
            current = _join(current, line, vocabulary)
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


def _join(current: str, line: str, vocabulary: set[str]) -> str:
    hyphen = _HYPHEN_END.search(current)
    word = _WORD_START.match(line)
    if hyphen is None or word is None:
        return f"{current} {line}"
    head, tail = hyphen.group(1), word.group(0)
    if tail[0].islower() and (head + tail).casefold() in vocabulary and f"{head}-{tail}".casefold() not in vocabulary:
        return current[:-1] + line  # typeset hyphenation: "infor-" + "mation"
    return current + line  # a compound broken at its own hyphen: "self-" + "regulatory"
