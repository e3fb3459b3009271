"""Markdown, HTML and DOCX → sections split at headings.

Each format is read into a flat list of blocks (a heading with its level, or a paragraph), and
`sections_from_blocks` starts a new section at every heading. The heading stays in the text as the
section's first paragraph, and `Section.heading` holds the trail above it ("Guide > Install > Linux").

- Markdown (markdown-it-py, CommonMark plus tables): markup is dropped, text kept: link text without the
  URL, image alt text, inline code without backticks. Code blocks are kept verbatim. List items become
  paragraphs starting with "- ". A leading YAML front-matter block (after HTML comments, if any) is metadata,
  not content: dropped.
- HTML (BeautifulSoup with lxml): the text of <main>, else <article>, else <body>. Dropped: script,
  style, nav, aside, forms, iframes, svg, hidden elements, and, outside main/article, page headers and
  footers. <br> is a line break; <pre> is kept verbatim.
- DOCX (python-docx): paragraphs in body order, "Title"/"Heading N" styles as headings; page headers,
  footers, footnotes, comments and text boxes are not read.
Tables, in all three: one line per row, cells joined with " | " (a merged DOCX cell once per row).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from tuneforge.documents.document import DocumentError, Section

HEADING_TRAIL_SEPARATOR = " > "
CELL_SEPARATOR = " | "

_SPACES = re.compile(r"[^\S\n]+")
# Front matter may follow a leading comment (a licence header, as in the rlhf-book chapters); the comment goes too.
_FRONT_MATTER = re.compile(r"\A\s*(?:<!--.*?-->\s*)*---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_TAG = re.compile(r"<!--.*?-->|<[^>]+>", re.DOTALL)
_DOCX_HEADING = re.compile(r"heading ([1-9])", re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    text: str
    level: int = 0  # a heading's depth (1 = top), 0 for a paragraph


def sections_from_blocks(blocks: list[Block]) -> list[Section]:
    sections: list[Section] = []
    trail: list[Block] = []
    parts: list[str] = []

    def flush() -> None:
        if parts:
            heading = HEADING_TRAIL_SEPARATOR.join(b.text for b in trail) or None
            sections.append(Section("\n\n".join(parts), heading=heading))
            parts.clear()

    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if block.level:
            flush()
            trail = [b for b in trail if b.level < block.level] + [Block(text, block.level)]
        parts.append(text)
    flush()
    return sections


def _clean(text: str) -> str:
    """Collapse runs of spaces and tabs, keep line breaks, drop blank lines."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# ---- Markdown


def markdown_sections(text: str) -> list[Section]:
    from markdown_it import MarkdownIt

    text = _FRONT_MATTER.sub("", text, count=1)
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)
    blocks: list[Block] = []
    row: list[str] = []
    rows: list[str] = []
    heading_level = 0
    list_depth = 0
    in_cell = False
    for token in tokens:
        kind = token.type
        if kind in ("th_open", "td_open"):
            in_cell = True
        elif kind in ("th_close", "td_close"):
            in_cell = False
        elif kind == "heading_open":
            heading_level = int(token.tag[1])
        elif kind == "heading_close":
            heading_level = 0
        elif kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "tr_close":
            rows.append(CELL_SEPARATOR.join(row))
            row = []
        elif kind == "table_close":
            blocks.append(Block("\n".join(rows)))
            rows = []
        elif kind in ("fence", "code_block"):
            blocks.append(Block(token.content.strip("\n")))
        elif kind == "html_block":
            blocks.append(Block(_clean(_TAG.sub(" ", token.content))))
        elif kind == "inline":
            inline = _inline_text(token.children or [])
            if in_cell:
                row.append(_clean(inline).replace("\n", " "))
            elif heading_level:
                blocks.append(Block(_clean(inline).replace("\n", " "), heading_level))
            elif list_depth:
                blocks.append(Block("- " + _clean(inline)))
            else:
                blocks.append(Block(_clean(inline)))
    return sections_from_blocks(blocks)


def _inline_text(children: list[Any]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)  # the alt text
    return "".join(parts)


# ---- HTML

_DROP_TAGS = [
    *("script", "style", "noscript", "template"),  # not text
    *("nav", "aside", "form", "button", "select"),  # navigation and controls
    *("iframe", "svg", "canvas", "object"),  # embedded content
]
_CHROME_TAGS = ["header", "footer"]  # page chrome, unless inside the main content (an article's own header)
_BLOCK_TAGS = frozenset(
    "p div section article main blockquote ul ol dl dt dd figure figcaption address details summary "
    "center fieldset hgroup body html".split()
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


def html_sections(data: bytes) -> list[Section]:
    from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, ProcessingInstruction, Tag

    soup = BeautifulSoup(data, "lxml")  # bytes: BeautifulSoup reads the charset from the BOM or <meta>
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(lambda t: t.has_attr("hidden") or t.get("aria-hidden") == "true"):
        tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("article")
    if root is None:
        for tag in soup.find_all(_CHROME_TAGS):
            tag.decompose()
        root = soup.body or soup
    blocks: list[Block] = []
    inline: list[str] = []

    def flush(prefix: str = "") -> None:
        text = _clean("".join(inline))
        inline.clear()
        if text:
            blocks.append(Block(prefix + text))

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                inline.append(str(child).replace("\n", " "))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HEADINGS:
                flush()
                blocks.append(Block(_clean(child.get_text(" ")).replace("\n", " "), _HEADINGS[name]))
            elif name == "table":
                flush()
                blocks.append(Block(_html_table(child)))
            elif name == "pre":
                flush()
                blocks.append(Block(child.get_text().strip("\n")))
            elif name == "br":
                inline.append("\n")
            elif name == "li":
                flush()
                walk(child)
                flush("- ")
            elif name in _BLOCK_TAGS:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    walk(root)
    flush()
    return sections_from_blocks(blocks)


def _html_table(table: Any) -> str:
    rows = []
    for tr in table.find_all("tr"):
        cells = [_clean(cell.get_text(" ")).replace("\n", " ") for cell in tr.find_all(["th", "td"], recursive=False)]
        if any(cells):
            rows.append(CELL_SEPARATOR.join(cells))
    return "\n".join(rows)


# ---- DOCX


def docx_sections(data: bytes) -> list[Section]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, KeyError for a missing part, ValueError for a .docm/.dotx
        raise DocumentError(f"not a readable DOCX file ({type(exc).__name__}: {exc})") from exc
    blocks: list[Block] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            style = item.style.name if item.style is not None else ""
            match = _DOCX_HEADING.fullmatch(style)
            # "Title" sits above "Heading 1" in the trail.
            level = 1 if style == "Title" else int(match.group(1)) + 1 if match else 0
            blocks.append(Block(_clean(item.text).replace("\n", " ") if level else _clean(item.text), level))
        elif isinstance(item, Table):
            blocks.append(Block(_docx_table(item)))
    return sections_from_blocks(blocks)


def _docx_table(table: Any) -> str:
    rows = []
    for row in table.rows:
        seen: list[Any] = []
        cells = []
        for cell in row.cells:
            # A cell merged across columns is returned once per grid column; keep it once. lxml hands back
            # the same proxy object for an element while a reference is held, so `is` finds repeats.
            if any(cell._tc is tc for tc in seen):
                continue
            seen.append(cell._tc)
            cells.append(_clean(cell.text).replace("\n", " "))
        if any(cells):
            rows.append(CELL_SEPARATOR.join(cells))
    return "\n".join(rows)
