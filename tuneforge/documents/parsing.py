"""Turn one uploaded file into clean text with page numbers, or say exactly why it can't be.

    doc = parse_document("s3://bucket/docs/act.pdf", data)     # ParsedDocument, or raises DocumentError
    attributes = load_sidecar(sidecar_bytes)                    # <file>.metadata.json → {key: value}

The format comes from the content first and the name second: a file that starts with a PDF header is
a PDF, a ZIP holding word/document.xml is a DOCX, whatever their names. Otherwise the extension decides
(`EXTENSIONS`); a name without one is read as HTML when it starts like HTML, else as text. Known binary
formats (images, executables, archives, legacy .doc) are named in the error.

Every failure is a `DocumentError` whose `reason` is meant for the ingestion job's failureReasons:
over the size limit (Bedrock's 50 MB per file), empty, unsupported or binary, encrypted, corrupt, or no
text. Ingestion counts the file as failed and goes on. See `pdf.py` and `markup.py` for what each
parser keeps and drops.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import re
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath

from tuneforge.documents.document import DocumentError, DocumentFormat, ParsedDocument, Section
from tuneforge.documents.markup import docx_sections, html_sections, markdown_sections
from tuneforge.documents.pdf import parse_pdf

MAX_DOCUMENT_BYTES = 50 * 1000**2  # Bedrock's per-file limit for S3 data sources (decimal MB, as AWS quotes it)
MAX_SIDECAR_BYTES = 10 * 1000  # Bedrock's limit on a .metadata.json file (10 KB)
SIDECAR_SUFFIX = ".metadata.json"
RESERVED_METADATA_PREFIX = "x-amz-bedrock-kb-"  # Bedrock's own keys (source URI, chunk id, page number)

EXTENSIONS: dict[str, DocumentFormat] = {
    ".pdf": DocumentFormat.PDF,
    ".md": DocumentFormat.MARKDOWN,
    ".markdown": DocumentFormat.MARKDOWN,
    ".html": DocumentFormat.HTML,
    ".htm": DocumentFormat.HTML,
    ".xhtml": DocumentFormat.HTML,
    ".txt": DocumentFormat.TEXT,
    ".text": DocumentFormat.TEXT,
    ".csv": DocumentFormat.TEXT,  # read as lines of text; Bedrock's per-row CSV mode is not implemented
    ".docx": DocumentFormat.DOCX,
}

# Signatures of common binary files, to name them in the error. Two-byte signatures that could begin a
# text file ("MZ") only count when the file also holds NUL bytes.
_BINARY_SIGNATURES: tuple[tuple[bytes, str, bool], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", False),
    (b"\xff\xd8\xff", "a JPEG image", False),
    (b"GIF87a", "a GIF image", False),
    (b"GIF89a", "a GIF image", False),
    (b"RIFF", "a RIFF file (WebP, WAV or AVI)", True),
    (b"\x7fELF", "an ELF executable", False),
    (b"MZ", "a Windows executable", True),
    (b"\x1f\x8b", "a gzip archive", True),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", False),
    (b"Rar!\x1a\x07", "a RAR archive", False),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (.doc/.xls/.ppt): save it as .docx", False),
    (b"PK\x03\x04", "a ZIP archive that is not a Word document", False),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_BINARY_CONTROL_FRACTION = 0.01  # text files have essentially no control characters; binaries have many
_SNIFF_BYTES = 64 * 1024
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_HTML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.IGNORECASE | re.DOTALL)


def parse_document(name: str, data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> ParsedDocument:
    """Parse one file by its content and name (see module docstring). Raises only DocumentError, whose
    `reason` says what is wrong with this file and `document` is `name`."""
    try:
        if len(data) > max_bytes:
            raise DocumentError(
                f"the file is {len(data):,} bytes, over the {max_bytes:,}-byte limit: split it into smaller files"
            )
        if not data.strip():
            raise DocumentError("the file is empty")
        document_format = detect_format(name, data)
        document = _PARSERS[document_format](name, data)
        if not any(section.text.strip() for section in document.sections):
            raise DocumentError(f"no extractable text in this {document_format.value} file")
        return document
    except DocumentError as exc:
        if exc.document is not None:
            raise
        raise DocumentError(exc.reason, document=name) from exc
    except Exception as exc:  # a parser bug or an input no parser expected must not stop the ingestion job
        raise DocumentError(f"the file could not be parsed ({type(exc).__name__}: {exc})", document=name) from exc


def detect_format(name: str, data: bytes) -> DocumentFormat:
    """The format to parse `data` as, from its magic bytes and then its extension; DocumentError if none fits."""
    extension = PurePosixPath(name).suffix.lower()
    head = data[:_SNIFF_BYTES]
    if b"%PDF-" in data[:1024]:  # the PDF spec lets the header start anywhere in the first 1024 bytes
        return DocumentFormat.PDF
    if head.startswith(b"PK\x03\x04") and _is_docx(data):
        return DocumentFormat.DOCX
    document_format = EXTENSIONS.get(extension)
    if document_format is DocumentFormat.PDF:
        raise DocumentError("corrupt PDF: the file has no %PDF- header, so it is not a PDF (or is truncated)")
    if document_format is DocumentFormat.DOCX:
        raise DocumentError("not a readable DOCX file: expected a ZIP archive holding word/document.xml")
    if document_format is None and extension in (".doc", ".xls", ".ppt", ".xlsx", ".pptx", ".rtf", ".odt"):
        raise DocumentError(f"unsupported file type {extension!r}: convert it to .docx or .pdf")
    if document_format is None and extension:
        raise DocumentError(f"unsupported file type {extension!r}: supported types are {_supported()}")
    binary = _binary_kind(head)
    if binary is not None:
        raise DocumentError(f"unsupported file: the content is {binary}, not text; supported types are {_supported()}")
    if document_format is not None:
        return document_format
    return DocumentFormat.HTML if _HTML_START.match(head) else DocumentFormat.TEXT


def _supported() -> str:
    return ", ".join(EXTENSIONS)


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _binary_kind(head: bytes) -> str | None:
    """What binary `head` looks like, or None if it may be text (UTF-16 text has NULs, so its BOM exempts it)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    has_nul = b"\x00" in head
    for signature, kind, needs_nul in _BINARY_SIGNATURES:
        if head.startswith(signature) and (has_nul or not needs_nul):
            return kind
    return "binary data (NUL bytes)" if has_nul else None


def decode_text(data: bytes) -> str:
    """Bytes of a text file → str: UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252/Latin-1.
    Raises DocumentError for binary content (NUL bytes or more than 1% control characters)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"the file starts with a UTF-16 byte-order mark but is not UTF-16 ({exc})") from exc
    else:
        if b"\x00" in data:
            raise DocumentError("binary data (NUL bytes) in a text file")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Legacy Windows text is the common non-UTF-8 case; Latin-1 decodes any byte, and binary junk is
            # caught by the control-character check below.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    sample = text[:_SNIFF_BYTES]
    if sample and len(_CONTROL.findall(sample)) > _BINARY_CONTROL_FRACTION * len(sample):
        raise DocumentError("binary data (control characters) in a text file")
    return text


def clean_text(text: str) -> str:
    """Normalize line ends, drop control characters and trailing spaces, keep at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.replace("\f", "\n\n"))
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _parse_text(name: str, data: bytes) -> ParsedDocument:
    text = clean_text(decode_text(data))
    return ParsedDocument(name, DocumentFormat.TEXT, (Section(text),) if text else ())


def _parse_markdown(name: str, data: bytes) -> ParsedDocument:
    sections = markdown_sections(clean_text(decode_text(data)))
    return ParsedDocument(name, DocumentFormat.MARKDOWN, tuple(sections))


def _parse_html(name: str, data: bytes) -> ParsedDocument:
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in data:
        raise DocumentError("binary data (NUL bytes) in an HTML file")
    return ParsedDocument(name, DocumentFormat.HTML, tuple(html_sections(data)))


def _parse_docx(name: str, data: bytes) -> ParsedDocument:
    return ParsedDocument(name, DocumentFormat.DOCX, tuple(docx_sections(data)))


_PARSERS: dict[DocumentFormat, Callable[[str, bytes], ParsedDocument]] = {
    DocumentFormat.PDF: parse_pdf,
    DocumentFormat.MARKDOWN: _parse_markdown,
    DocumentFormat.HTML: _parse_html,
    DocumentFormat.TEXT: _parse_text,
    DocumentFormat.DOCX: _parse_docx,
}


# ---- metadata sidecars

MetadataValue = str | int | float | bool | list[str]


def load_sidecar(data: bytes, *, max_bytes: int = MAX_SIDECAR_BYTES) -> dict[str, MetadataValue]:
    """Read a Bedrock `<file>.metadata.json`: `{"metadataAttributes": {key: value}}`, each value a string,
    number, boolean or list of strings. Other top-level keys (e.g. a CSV's documentStructureConfiguration)
    are ignored. Raises DocumentError listing every bad attribute."""
    if len(data) > max_bytes:
        raise DocumentError(f"the metadata file is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentError(f"the metadata file is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(body, dict) or not isinstance(body.get("metadataAttributes"), dict):
        raise DocumentError('the metadata file must be a JSON object {"metadataAttributes": {"key": value, ...}}')
    attributes = body["metadataAttributes"]
    problems = [p for key, value in attributes.items() if (p := _attribute_problem(key, value))]
    if problems:
        raise DocumentError("invalid metadata file: " + "; ".join(problems))
    return dict(attributes)


def _attribute_problem(key: str, value: object) -> str | None:
    field = f"metadataAttributes.{key}"
    if not key.strip():
        return "metadataAttributes has an empty key"
    if key.startswith(RESERVED_METADATA_PREFIX):
        return f"{field}: keys starting with {RESERVED_METADATA_PREFIX!r} are reserved for the knowledge base"
    if isinstance(value, bool | str):
        return None
    if isinstance(value, int | float):
        return None if math.isfinite(value) else f"{field}: {value!r} is not a finite number"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return None
    return f"{field}: {json.dumps(value)[:80]} is not a string, number, boolean or list of strings"
