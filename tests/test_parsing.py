"""Parsing real files: PDFs written here with pypdf (plain, table, encrypted, corrupt), DOCX with python-docx,
HTML/Markdown/text strings, and (when ../shared/data is present) the real 427-page Exchange Act PDF."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

import tuneforge.documents as documents
from tuneforge.documents import DocumentError, DocumentFormat, ParsedDocument, load_sidecar, parse_document
from tuneforge.errors import InvalidInput

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TUNEFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
EXCHANGE_ACT = SHARED_DATA / "pdf" / "exchange-act-1934.pdf"
needs_shared_data = pytest.mark.skipif(
    not EXCHANGE_ACT.is_file(), reason=f"shared data not found at {SHARED_DATA} (set TUNEFORGE_SHARED_DATA)"
)

PROSE = (
    "The committee reviewed the quarterly results in detail and agreed that the budget for the next",
    "year should stay within the limits set by the board, with a small reserve kept for the costs of",
    "the new office and for any audit.",  # a short last line ends the paragraph
)


# ---- building PDFs


def make_pdf(pages: list[list[tuple[float, float, str]]], *, password: str | None = None, algorithm: str = "RC4-128",
             owner_password: str | None = None) -> bytes:
    """A PDF whose pages draw each (x, y, text) with Helvetica 10pt; optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
        NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
    }))
    for items in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        ops = "".join(f"BT /F1 10 Tf {x} {y} Td ({_escape(text)}) Tj ET\n" for x, y, text in items)
        stream = DecodedStreamObject()
        stream.set_data(ops.encode("cp1252"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password is not None:
        writer.encrypt(password, owner_password or "owner-secret", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def lines_page(lines: list[str], *, top: float = 740, x: float = 72) -> list[tuple[float, float, str]]:
    return [(x, top - 14 * i, line) for i, line in enumerate(lines)]


# ---- PDF


def test_pdf_keeps_page_numbers_and_joins_wrapped_lines() -> None:
    data = make_pdf([lines_page([*PROSE, "Second paragraph on page one."]), [], lines_page(["Page three has text."])])
    doc = parse_document("minutes.pdf", data)
    assert doc.format is DocumentFormat.PDF and doc.page_count == 3
    assert [s.page_number for s in doc.sections] == [1, 3]  # the blank page 2 has no section
    first = doc.sections[0].text
    assert first.startswith("The committee reviewed the quarterly results in detail and agreed that the budget for the next year")
    assert "\n" not in first.split("\n\n")[0]  # wrapped lines joined with spaces
    assert first.endswith("for the costs of the new office and for any audit.\n\nSecond paragraph on page one.")
    assert doc.page_at(doc.text.index("Page three")) == 3


def test_pdf_drops_running_headers_and_footers_but_keeps_body_copies() -> None:
    pages = []
    for number, word in enumerate(("one", "two", "three", "four", "five"), start=1):
        body = [*PROSE, f"Body of page {word} ends here."]
        if number == 3:
            body.append("ACME Corp Annual Report 2024")  # the header's text inside the body, mid-page
            body.append("More body text after the quoted title, long enough to be a real line of prose here.")
        items = [(72, 770, "ACME Corp Annual Report 2024"), (400, 770, f"Printed 11/2{number}/24")]
        items += lines_page(body)
        items.append((280, 30, f"Page {number} of 5"))
        pages.append(items)
    doc = parse_document("report.pdf", make_pdf(pages))
    text = doc.text
    assert "Page 1 of 5" not in text and "Page 5 of 5" not in text
    assert "Printed" not in text
    assert text.count("ACME Corp Annual Report 2024") == 1  # only the body copy on page 3 is left
    assert doc.page_at(text.index("ACME Corp Annual Report 2024")) == 3
    assert all(f"Body of page {n} ends here." in text for n in ("one", "two", "three", "four", "five"))


def test_pdf_dehyphenates_only_when_the_document_knows_the_joined_word() -> None:
    lines = [
        "This information is public. The report gives infor-",
        "mation about the self-",
        "regulatory organizations and their duties under the act.",
        "A short line.",
    ]
    text = parse_document("h.pdf", make_pdf([lines_page(lines)])).text
    assert "gives information about" in text
    assert "the self-regulatory organizations" in text


def test_pdf_table_rows_stay_on_their_own_lines() -> None:
    rows = [("Name", "Qty", "Price"), ("Apple", "3", "1.20"), ("Banana split", "12", "3.50")]
    items = lines_page(list(PROSE))
    items += [(72 + 150 * col, 680 - 14 * row, cell) for row, cells in enumerate(rows) for col, cell in enumerate(cells)]
    items += lines_page(list(PROSE), top=620)
    text = parse_document("t.pdf", make_pdf([items])).text
    paragraphs = text.split("\n\n")
    assert ["Name Qty Price", "Apple 3 1.20", "Banana split 12 3.50"] == paragraphs[1:4]


def test_pdf_with_empty_user_password_is_decrypted() -> None:
    data = make_pdf([lines_page(["Only printing is restricted."])], password="")
    assert parse_document("r.pdf", data).text == "Only printing is restricted."


def test_pdf_aes_with_empty_user_password_is_decrypted() -> None:
    if importlib.util.find_spec("cryptography") is None:
        pytest.skip("AES needs the cryptography package (pypdf[crypto])")
    data = make_pdf([lines_page(["AES protected text."])], password="", algorithm="AES-256")
    assert parse_document("a.pdf", data).text == "AES protected text."


def test_pdf_that_needs_a_password_is_a_document_error() -> None:
    data = make_pdf([lines_page(["Secret."])], password="hunter2")
    with pytest.raises(DocumentError, match="encrypted PDF that needs a password") as caught:
        parse_document("secret.pdf", data)
    assert caught.value.document == "secret.pdf" and isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + bytes(range(256)) * 8,  # a header, then junk
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF",  # no page tree
    ],
    ids=["junk", "no-pages"],
)
def test_corrupt_pdf_is_a_document_error(data: bytes) -> None:
    with pytest.raises(DocumentError, match="corrupt PDF|no pages|no extractable text"):
        parse_document("broken.pdf", data)


def test_truncated_pdf_is_a_document_error_or_partial() -> None:
    data = make_pdf([lines_page([f"Page {n} text."]) for n in range(1, 4)])
    try:
        doc = parse_document("cut.pdf", data[: len(data) // 3])
    except DocumentError as exc:
        assert "PDF" in exc.reason or "text" in exc.reason
    else:  # pypdf may rebuild what is left; then the text must still be clean
        assert doc.text


def test_pdf_named_pdf_without_pdf_header() -> None:
    with pytest.raises(DocumentError, match="no %PDF- header"):
        parse_document("fake.pdf", b"hello, I am text")


def test_pdf_without_text_is_a_document_error() -> None:
    with pytest.raises(DocumentError, match="no extractable text.*OCR"):
        parse_document("scan.pdf", make_pdf([[], []]))


def test_content_beats_extension() -> None:
    data = make_pdf([lines_page(["A PDF in disguise."])])
    assert parse_document("notes.txt", data).format is DocumentFormat.PDF


# ---- Markdown, HTML, text


def test_markdown_headings_become_sections_and_markup_is_stripped() -> None:
    source = """---
title: front matter is metadata
---
# Guide

Intro with a [link](https://example.com) and `inline code` and **bold**.

## Install

- first *step*
- second step

| Option | Default |
|---|---|
| `--fast` | off |

```
pip install  tuneforge
```
"""
    doc = parse_document("guide.md", source.encode())
    assert doc.format is DocumentFormat.MARKDOWN
    assert [s.heading for s in doc.sections] == ["Guide", "Guide > Install"]
    assert doc.sections[0].text == "Guide\n\nIntro with a link and inline code and bold."
    assert doc.sections[1].text == "Install\n\n- first step\n\n- second step\n\nOption | Default\n--fast | off\n\npip install  tuneforge"
    assert "front matter" not in doc.text


def test_markdown_front_matter_after_a_licence_comment_is_dropped() -> None:
    # The rlhf-book chapters start this way: a licence comment, then YAML front matter.
    source = "<!--\n  Copyright (c) 2025 Someone.\n-->\n---\npage-title: Intro\nnext-url: \"02\"\n---\n\n# Intro\n\nBody text.\n"
    doc = parse_document("01-intro.md", source.encode())
    assert doc.text == "Intro\n\nBody text."


def test_html_keeps_main_content_and_drops_chrome() -> None:
    html = """<!doctype html><html><head><title>t</title><style>p {color: red}</style></head><body>
    <nav><a href="/">Home</a> | <a href="/about">About</a></nav>
    <main><article><header><h1>Rates</h1></header>
      <p>Rates are set <b>monthly</b>.<br>See below.</p>
      <div hidden>secret</div>
      <table><tr><th>Tier</th><th>Rate</th></tr><tr><td>Gold</td><td>5%</td></tr></table>
      <ul><li>One</li><li>Two</li></ul>
      <h2>Notes</h2><p>Final   words.</p></article></main>
    <footer>Copyright</footer><script>track()</script></body></html>"""
    doc = parse_document("rates.html", html.encode())
    assert doc.format is DocumentFormat.HTML
    assert [s.heading for s in doc.sections] == ["Rates", "Rates > Notes"]
    assert doc.sections[0].text == "Rates\n\nRates are set monthly.\nSee below.\n\nTier | Rate\nGold | 5%\n\n- One\n\n- Two"
    assert doc.sections[1].text == "Notes\n\nFinal words."
    for dropped in ("Home", "Copyright", "track", "color", "secret"):
        assert dropped not in doc.text


def test_html_without_main_drops_page_header_and_footer() -> None:
    html = b"<html><body><header>Site name</header><div><p>Body text.</p></div><footer>Footer</footer></body></html>"
    assert parse_document("page", html).text == "Body text."  # no extension: sniffed as HTML


@pytest.mark.parametrize(
    "data",
    ["Caf\u00e9 prices rose.".encode(), "Caf\u00e9 prices rose.".encode("cp1252"), "Caf\u00e9 prices rose.".encode("utf-16")],
    ids=["utf8", "cp1252", "utf16-bom"],
)
def test_text_encodings(data: bytes) -> None:
    doc = parse_document("note.txt", data)
    assert doc.text == "Caf\u00e9 prices rose." and doc.sections[0].page_number is None


def test_text_line_endings_and_blank_lines_are_normalized() -> None:
    assert parse_document("a.txt", b"one  \r\ntwo\r\n\r\n\r\n\r\nthree\n").text == "one\ntwo\n\nthree"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("data.txt", b"abc\x00\x01\x02def", "binary data"),
        ("tool.exe", b"MZ\x90\x00\x03\x00", "unsupported file type '.exe'"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00", "unsupported file type '.png'"),
        ("photo", b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "convert it to .docx"),
        ("empty.txt", b"", "empty"),
        ("blank.md", b"  \n\t\n", "empty"),
        ("comments.html", b"<html><body><script>x()</script></body></html>", "no extractable text"),
    ],
)
def test_unusable_files_are_document_errors(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_document(name, data)
    assert caught.value.document == name and name in str(caught.value)


def test_size_limit() -> None:
    with pytest.raises(DocumentError, match="over the 10-byte limit"):
        parse_document("big.txt", b"x" * 11, max_bytes=10)
    assert parse_document("ok.txt", b"x" * 10, max_bytes=10).text == "x" * 10
    assert documents.MAX_DOCUMENT_BYTES == 50_000_000


# ---- DOCX


def test_docx_paragraphs_headings_and_tables() -> None:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_heading("Travel policy", 0)
    document.add_heading("Scope", 1)
    document.add_paragraph("This policy applies to all staff.")
    table = document.add_table(rows=3, cols=3)
    for col, text in enumerate(("Role", "Limit", "Notes")):
        table.cell(0, col).text = text
    for col, text in enumerate(("Analyst", "100", "none")):
        table.cell(1, col).text = text
    table.cell(2, 0).merge(table.cell(2, 1)).text = "Merged"
    table.cell(2, 2).text = "end"
    document.add_paragraph("After the table.")
    buffer = io.BytesIO()
    document.save(buffer)
    doc = parse_document("policy.docx", buffer.getvalue())
    assert doc.format is DocumentFormat.DOCX
    assert [s.heading for s in doc.sections] == ["Travel policy", "Travel policy > Scope"]
    assert doc.sections[1].text == (
        "Scope\n\nThis policy applies to all staff.\n\nRole | Limit | Notes\nAnalyst | 100 | none\nMerged | end\n\nAfter the table."
    )


def test_docx_that_is_not_a_word_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="not a readable DOCX"):
        parse_document("fake.docx", buffer.getvalue())


# ---- metadata sidecars


def test_sidecar_values() -> None:
    body = {"metadataAttributes": {"year": 1934, "rate": 0.5, "public": True, "title": "Act", "tags": ["sec", "law"]}}
    assert load_sidecar(json.dumps(body).encode()) == body["metadataAttributes"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b'{"attributes": {}}', "metadataAttributes"),
        (b'{"metadataAttributes": {"nested": {"a": 1}}}', "metadataAttributes.nested"),
        (b'{"metadataAttributes": {"mixed": ["a", 1]}}', "metadataAttributes.mixed"),
        (b'{"metadataAttributes": {"n": NaN}}', "metadataAttributes.n: nan is not a finite number"),
        (b'{"metadataAttributes": {"x-amz-bedrock-kb-source-uri": "s3://x"}}', "reserved"),
        (b'{"metadataAttributes": {"none": null}}', "metadataAttributes.none"),
    ],
)
def test_sidecar_errors(data: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        load_sidecar(data)


def test_sidecar_lists_every_problem_and_has_a_size_limit() -> None:
    with pytest.raises(DocumentError) as caught:
        load_sidecar(b'{"metadataAttributes": {"a": {}, "b": [1], "ok": "fine"}}')
    assert "metadataAttributes.a" in caught.value.reason and "metadataAttributes.b" in caught.value.reason
    with pytest.raises(DocumentError, match="over the 10,000-byte limit"):
        load_sidecar(b'{"metadataAttributes": {"k": "' + b"x" * 10_000 + b'"}}')


def test_exported_names_exist() -> None:
    assert sorted(documents.__all__) == sorted(set(documents.__all__))
    for name in documents.__all__:
        assert hasattr(documents, name), name


# ---- the real documents in ../shared/data


@functools.cache
def exchange_act() -> ParsedDocument:
    """The parsed Exchange Act, shared with test_chunking (parsing it takes ~15 s)."""
    return parse_document(EXCHANGE_ACT.name, EXCHANGE_ACT.read_bytes())


@needs_shared_data
@pytest.mark.slow  # parses a whole statute PDF
def test_exchange_act_pages_and_running_lines() -> None:
    doc = exchange_act()
    assert doc.page_count == 427 and not doc.warnings
    assert [s.page_number for s in doc.sections] == list(range(1, 428))
    text = doc.text
    # Chromium prints the date and time at the top and the file URL with "n/427" at the bottom of every page.
    assert "file:///" not in text and "8:08 AM" not in text and "/427" not in text
    assert "ﬁ" not in text  # ligatures spelled out
    assert "§ 78a. Short title" in doc.sections[0].text
    assert "§ 78rr. Data standards for security-based swap reporting" in doc.sections[-1].text
    # Page 2 starts mid-sentence, so it continues page 1 (joined by a soft break, not a paragraph break).
    assert doc.sections[1].text.startswith("contraction of the volume of credit") and doc.sections[1].continues_previous
    assert "self-regulatory" in text and "selfregulatory" not in text


@needs_shared_data
def test_uscode_markdown_keeps_heading_trail() -> None:
    path = SHARED_DATA / "uscode-securities" / "title-15"
    files = sorted(path.glob("*.md"))
    assert files, f"no Markdown files under {path}"
    doc = parse_document(files[0].name, files[0].read_bytes())
    assert doc.sections[-1].heading.startswith("Title 15")
    assert " > " in doc.sections[-1].heading
