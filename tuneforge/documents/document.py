"""What parsing produces and chunking consumes: a document as an ordered list of sections.

A PDF gives one `Section` per page that has text (with its 1-based page number); Markdown, HTML and
DOCX give one per heading (no page numbers: those formats have no pages); plain text gives one.
`ParsedDocument.text` is the sections joined, and chunk offsets (`start_char`, `end_char`) index it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from tuneforge.errors import InvalidInput

PARAGRAPH_BREAK = "\n\n"  # between paragraphs and sections; the sentence splitter treats it as a hard break
SOFT_BREAK = "\n"  # between two pages that split one paragraph; the splitter reads it as a space


class DocumentError(InvalidInput):
    """One document cannot be ingested. Ingestion records `reason` for the file, counts it in
    `numberOfDocumentsFailed` and goes on with the others."""

    def __init__(self, reason: str, *, document: str | None = None) -> None:
        super().__init__(f"{document}: {reason}" if document else reason, field=document)
        self.reason = reason
        self.document = document


class DocumentFormat(StrEnum):
    PDF = "pdf"
    MARKDOWN = "markdown"
    HTML = "html"
    TEXT = "text"
    DOCX = "docx"


@dataclass(frozen=True)
class Section:
    """A run of clean text: paragraphs separated by blank lines, table rows one per line.

    `heading` is the trail of headings above the section ("Chapter 2 > Scope"), kept as context for
    callers; the heading line itself is also the first paragraph of `text`. `continues_previous` says the
    first paragraph carries on the previous section's last one (a sentence broken by a page break), so the
    two are joined by a soft break rather than a paragraph break.
    """

    text: str
    page_number: int | None = None
    heading: str | None = None
    continues_previous: bool = False


@dataclass(frozen=True)
class ParsedDocument:
    name: str
    format: DocumentFormat
    sections: tuple[Section, ...]
    page_count: int | None = None  # PDFs only: all pages, including those without text
    warnings: tuple[str, ...] = field(default=())  # problems that cost part of the text, e.g. one unreadable page

    @cached_property
    def _layout(self) -> tuple[str, tuple[int, ...]]:
        parts: list[str] = []
        starts: list[int] = []
        offset = 0
        for index, section in enumerate(self.sections):
            if index:
                joiner = SOFT_BREAK if section.continues_previous else PARAGRAPH_BREAK
                parts.append(joiner)
                offset += len(joiner)
            starts.append(offset)
            parts.append(section.text)
            offset += len(section.text)
        return "".join(parts), tuple(starts)

    @property
    def text(self) -> str:
        """All sections joined; chunk offsets index this string."""
        return self._layout[0]

    def section_at(self, offset: int) -> Section:
        """The section holding character `offset` of `text` (a separator belongs to the section before it)."""
        starts = self._layout[1]
        return self.sections[max(bisect.bisect_right(starts, offset) - 1, 0)]

    def page_at(self, offset: int) -> int | None:
        return self.section_at(offset).page_number
