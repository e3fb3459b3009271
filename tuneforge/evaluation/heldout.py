"""Held-out data for evaluation: prompt/completion rows for ROUGE, plain texts for perplexity (no torch).

- Rows come from a fine-tuning JSONL file in the prompt/completion form (what `tuneforge data from-hf` writes),
  checked by the job validator's record parser, so a bad line is named by its number.
- Texts come from continued pre-training JSONL files ({"input"} per line, each line one text) or from documents
  (PDF, Markdown, text, HTML, DOCX; each file one text), parsed by tuneforge.documents as `from-docs` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data import DatasetKind, read_records
from tuneforge.data.from_docs import expand_paths
from tuneforge.documents import DocumentError, parse_document
from tuneforge.errors import InvalidInput


@dataclass(frozen=True)
class PromptRow:
    prompt: str
    reference: str


@dataclass(frozen=True)
class HeldOutText:
    source: str  # the file (and line, for JSONL) it came from
    text: str


def load_prompt_rows(path: str | os.PathLike[str], *, limit: int | None = None) -> list[PromptRow]:
    """The first `limit` (all when None) rows of a prompt/completion JSONL file."""
    rows: list[PromptRow] = []
    for number, record in enumerate(read_records(path, DatasetKind.FINE_TUNING), start=1):
        if "prompt" not in record:
            raise InvalidInput(f"{path} line {number}: ROUGE needs prompt/completion records, this file uses chat messages; "
                               "write it with `tuneforge data from-hf`", field="DATA")
        rows.append(PromptRow(record["prompt"], record["completion"]))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise InvalidInput(f"{path} holds no records", field="DATA")
    return rows


def load_texts(paths: Sequence[str | os.PathLike[str]]) -> list[HeldOutText]:
    """Texts from {"input"} JSONL files and documents (directories expand to the documents under them)."""
    texts: list[HeldOutText] = []
    failures: list[str] = []
    for path in expand_paths(paths):
        if path.suffix.lower() == ".jsonl":
            for number, record in enumerate(read_records(path, DatasetKind.CONTINUED_PRE_TRAINING), start=1):
                texts.append(HeldOutText(f"{path}:{number}", record["input"]))
            continue
        try:
            texts.append(HeldOutText(str(path), parse_document(str(path), Path(path).read_bytes()).text))
        except DocumentError as exc:
            failures.append(f"{path}: {exc.reason}")
    if failures:
        raise InvalidInput("cannot read: " + "; ".join(failures), field="FILE")
    if not texts:
        raise InvalidInput("no text to measure: the files hold no records", field="FILE")
    return texts
