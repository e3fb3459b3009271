"""Documents (PDF, Markdown, text, HTML, DOCX) -> continued pre-training records {"input": ...}, one per chunk.

    count, context = model_token_counter(spec)                       # the model's own tokenizer, no torch
    conversion = documents_to_records(["book.pdf"], count_tokens=count, max_tokens=1023, overlap_tokens=102)
    write_jsonl(conversion.records, "cpt.jsonl")

Parsing is tuneforge.documents' (`parse_document`): PDF text with running headers, footers and page numbers
removed, line-end hyphens joined where the document spells the word unhyphenated, lines joined into paragraphs;
Markdown without markup or front matter. Chunking is its FIXED_SIZE chunker: sentences packed up to
`max_tokens` (counted with the model's tokenizer, without special tokens), each chunk starting with whole
trailing sentences of the previous one worth at most `overlap_tokens`. A chunk never ends mid-sentence unless
the sentence alone is over the limit. The default `max_tokens` is the trainer's default sequence length for
the model minus one (the EOS the trainer appends), so every record passes the job validator.

A directory argument stands for the supported files under it (recursively, sorted by path). A file that cannot
be parsed stops the conversion with every failing file named; nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.data.validate import TokenCounter
from tuneforge.documents import DocumentError, FixedSizeChunker, parse_document
from tuneforge.documents.parsing import EXTENSIONS
from tuneforge.errors import InvalidInput, NotFound

DEFAULT_OVERLAP_FRACTION = 0.1  # of max_tokens; the reference demo chunks "with overlap"; 10% keeps repetition small


@dataclass(frozen=True)
class DocumentSummary:
    path: str
    format: str
    pages: int | None
    chunks: int
    tokens: int  # summed over its chunks (overlap counted in each)
    warnings: tuple[str, ...] = ()


@dataclass
class DocsConversion:
    records: list[dict[str, str]] = field(default_factory=list)
    documents: list[DocumentSummary] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(d.tokens for d in self.documents)


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, and the supported files under each directory; NotFound for a missing path."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
            if not found:
                raise InvalidInput(f"{str(path)!r} holds no supported document ({', '.join(EXTENSIONS)})", field="PATH")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise NotFound(f"no such file or directory: {str(path)!r}", field="PATH")
    return files


def documents_to_records(
    paths: Sequence[str | os.PathLike[str]],
    *,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> DocsConversion:
    """Parse and chunk every document (see module docstring). `progress(done, total, name)` after each file."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2:
        raise InvalidInput(f"--max-tokens must be an integer of at least 2, got {max_tokens!r}", field="--max-tokens")
    overlap = int(max_tokens * DEFAULT_OVERLAP_FRACTION) if overlap_tokens is None else overlap_tokens
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < max_tokens:
        raise InvalidInput(f"--overlap-tokens must be at least 0 and below --max-tokens ({max_tokens}), got {overlap!r}",
                           field="--overlap-tokens")
    files = expand_paths(paths)
    chunker = FixedSizeChunker(max_tokens, overlap, count_tokens)
    out = DocsConversion()
    failures: list[str] = []
    for done, path in enumerate(files, start=1):
        try:
            document = parse_document(str(path), path.read_bytes())
        except DocumentError as exc:
            failures.append(f"{path}: {exc.reason}")
            continue
        chunks = chunker.chunk(document)
        out.records += [{"input": c.text} for c in chunks]
        out.documents.append(DocumentSummary(str(path), document.format.value, document.page_count, len(chunks),
                                             sum(c.token_count for c in chunks), document.warnings))
        if progress is not None:
            progress(done, len(files), path.name)
    if failures:
        raise InvalidInput(f"{len(failures)} of {len(files)} document(s) could not be read, nothing was written: "
                           + "; ".join(failures), field="PATH")
    return out
