"""Validate a customization data file before any training: one streaming pass, every problem reported.

    count = load_token_counter(checkpoint_dir)                  # tokenizer.json, no torch
    limit = record_limit(kind, context=8192, max_sequence_length=None, base_model_id=model_id, batch_size=8)
    report = validate_dataset("s3://bucket/train.jsonl", DatasetKind.FINE_TUNING, count_tokens=count, limit=limit)
    if not report.ok:
        raise InvalidInput(report.failure_message(), field="trainingDataConfig.s3Uri")
    problems = check_combined([report, validation_report], DataLimits())   # training + validation records

The file is read line by line through `tuneforge.storage` (local path, file:// or s3://), so memory stays
bounded whatever its size: one line (at most `DataLimits.max_line_bytes`), one token batch and the first
`max_problems` problems; the rest are only counted. Tokens are counted in batches of `BATCH_LINES` lines.

Lengths: a record longer than `limit` (tuneforge.training.lengths.record_limit: the model's context, the job's
maxSequenceLength or Bedrock's per-record limit for its own model ids) is a problem that names the limit, where it
comes from and the fix. Continued pre-training records are not limited by the training length: with `window` (the
trainer's row length) the report counts the records that will be split and the windows they make.

Limits: record lengths of the chat form are estimates (contents plus `CHAT_TOKENS_PER_MESSAGE` per
message; the real chat template is applied at training). A file over its size limit is rejected from its
size alone, without reading it, when the store reports the size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from tuneforge import storage
from tuneforge.data.records import DatasetKind, Form, ParsedLine, Problem, parse_line, template_tokens
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.training.lengths import RecordLimit

TokenCounter = Callable[[list[str]], list[int]]
"""Token counts of a batch of texts, without special tokens (the validator adds EOS and template itself)."""

Role = Literal["training", "validation"]
BATCH_LINES = 256  # lines per count_tokens call: large enough for the Rust tokenizer's parallelism, small in memory
MAX_PROBLEMS = 100  # problems kept with their text; all are counted
_MB = 1000**2  # decimal units, as the AWS quota pages write them
_GB = 1000**3
_SKIP_CHUNK = 1024 * 1024  # reads while skipping the rest of an over-long line


@dataclass(frozen=True)
class DataLimits:
    """Bedrock's default customization quotas (docs/bedrock-api.md §2a). Like Bedrock's, they are adjustable."""

    max_records_fine_tuning: int = 10_000  # sum of training and validation records
    max_records_continued_pre_training: int = 100_000  # sum of training and validation records
    max_training_bytes_fine_tuning: int = 1 * _GB
    max_training_bytes_continued_pre_training: int = 10 * _GB
    max_validation_bytes: int = 100 * _MB
    # Not a Bedrock quota: bounds the memory one line may take. Far above any record that fits a context
    # window (Bedrock estimates ~6 characters per token), so only broken files (no newlines) reach it.
    max_line_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"data limit {name} must be a positive integer, got {value!r}", field=name)

    def max_records(self, kind: DatasetKind) -> int:
        if kind != DatasetKind.CONTINUED_PRE_TRAINING:  # preference pairs: fine-tuning's quotas (no Bedrock quota exists)
            return self.max_records_fine_tuning
        return self.max_records_continued_pre_training

    def max_bytes(self, kind: DatasetKind, role: Role) -> int:
        if role == "validation":
            return self.max_validation_bytes
        if kind != DatasetKind.CONTINUED_PRE_TRAINING:
            return self.max_training_bytes_fine_tuning
        return self.max_training_bytes_continued_pre_training


@dataclass
class ValidationReport:
    """What one pass over a data file found. `problems` holds the first ones; `problem_count` counts all."""

    uri: str
    kind: DatasetKind
    role: Role = "training"
    chat_form: bool | None = None  # fine-tuning only: True for {"messages"}, False for prompt/completion
    records: int = 0  # non-blank lines, valid or not
    tokens: int = 0  # over the valid records, EOS and (estimated) chat template included
    max_record_tokens: int = 0
    window: int | None = None  # continued pre-training: the trainer's row length, if known
    split_records: int = 0  # records longer than `window`, which the trainer splits ...
    split_windows: int = 0  # ... into this many windows
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    bytes: int = 0
    max_problems: int = MAX_PROBLEMS

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    @property
    def rows(self) -> int:
        """Training rows: one per fine-tuning record; pre-training packs every token into rows of `window`."""
        if self.kind == DatasetKind.CONTINUED_PRE_TRAINING and self.window:
            return math.ceil(self.tokens / self.window)
        return self.records

    def summary(self, batch_size: int, epochs: int, tokens_per_second: float | None = None) -> dict[str, Any]:
        """Size of the training run this file makes: steps = ceil(rows / batch_size) * epochs; seconds
        = tokens * epochs / tokens_per_second when a measured throughput is given (else None)."""
        for name, value in (("batch_size", batch_size), ("epochs", epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, got {value!r}", field=name)
        if tokens_per_second is not None and not tokens_per_second > 0:
            raise InvalidInput(f"tokens_per_second must be positive, got {tokens_per_second!r}", field="tokens_per_second")
        return {
            "records": self.records,
            "tokens": self.tokens,
            "max_record_tokens": self.max_record_tokens,
            "rows": self.rows,
            "split_records": self.split_records,
            "split_windows": self.split_windows,
            "steps": math.ceil(self.rows / batch_size) * epochs,
            "estimated_seconds": self.tokens * epochs / tokens_per_second if tokens_per_second else None,
        }

    def failure_message(self, limit: int = 5) -> str:
        """One paragraph for an error reply: the count, the first `limit` problems, the next step."""
        n = self.problem_count
        shown = self.problems[:limit]
        text = f"{self.uri}: {n} problem{'' if n == 1 else 's'}. " + "; ".join(str(p) for p in shown)
        if n > len(shown):
            text += f"; ... and {n - len(shown)} more"
        return text + ". Fix the file and create the job again."


def load_token_counter(path: str | os.PathLike[str]) -> TokenCounter:
    """A TokenCounter from a checkpoint directory's tokenizer.json (or that file), via `tokenizers`: no torch.

    Truncation and padding saved in the file are switched off, or long records would count as short.
    """
    from tokenizers import Tokenizer  # imported here: only validation needs it

    file = Path(path) / "tokenizer.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise NotFound(f"no tokenizer.json at {str(file)!r}: pass a checkpoint directory saved with a fast tokenizer")
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise InvalidInput(f"cannot load tokenizer {str(file)!r}: {exc}: re-save the checkpoint's tokenizer") from exc
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(texts: list[str]) -> list[int]:
        # encode_batch_fast skips the offsets we do not need.
        return [len(e) for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

    return count


def validate_dataset(
    uri: str | os.PathLike[str],
    kind: DatasetKind,
    *,
    count_tokens: TokenCounter,
    max_sequence_length: int | None = None,
    limit: RecordLimit | None = None,
    window: int | None = None,
    limits: DataLimits = DataLimits(),
    role: Role = "training",
    progress: Callable[[int], None] | None = None,
    max_problems: int = MAX_PROBLEMS,
) -> ValidationReport:
    """Stream `uri` and report every problem (see module docstring). `progress` gets the bytes read so far
    after each batch. Checks this file's record count against `limits`; the training + validation total is
    `check_combined`'s job. Raises only for the storage (NotFound, AccessDenied, ...) and bad arguments.

    `max_sequence_length` is the job's maxSequenceLength, a shorthand: fine-tuning records must fit it (unless
    `limit` says otherwise) and pre-training is split into windows of it (unless `window` says otherwise)."""
    if role not in ("training", "validation"):
        raise InvalidInput(f"role must be 'training' or 'validation', got {role!r}", field="role")
    for name, value in (("max_sequence_length", max_sequence_length), ("window", window)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
            raise InvalidInput(f"{name} must be an integer >= 2, got {value!r}", field=name)
    if max_sequence_length is not None:
        if kind == DatasetKind.CONTINUED_PRE_TRAINING:
            window = window or max_sequence_length
        elif limit is None:
            limit = RecordLimit(max_sequence_length, "the job's maxSequenceLength", "shorten the record or raise maxSequenceLength")
    report = ValidationReport(uri=str(uri), kind=kind, role=role, max_problems=max_problems, window=window)
    max_bytes = limits.max_bytes(kind, role)
    size = _object_size(uri)
    if size is not None and size > max_bytes:
        # Reading a file that cannot be used anyway would take minutes; its size says enough.
        report.bytes = size
        report.add(_too_big(size, max_bytes, kind, role))
        return report
    pending: list[tuple[int, ParsedLine]] = []  # valid records of this batch, waiting for their token count
    held: list[Problem] = []  # this batch's problems, added in line order once its lengths are known
    with storage.open_read(uri) as f:
        for line, size_of_line, parsed in _scan(f, kind, limits.max_line_bytes):
            report.bytes += size_of_line
            report.records += not parsed.blank
            if report.chat_form is None and parsed.form is not None and kind == DatasetKind.FINE_TUNING:
                report.chat_form = parsed.form is Form.CHAT
            held += parsed.problems
            if parsed.record is not None:
                pending.append((line, parsed))
            if line % BATCH_LINES == 0:
                _flush(pending, held, report, count_tokens, limit)
                if progress is not None:
                    progress(report.bytes)
    _flush(pending, held, report, count_tokens, limit)
    if progress is not None:
        progress(report.bytes)
    if report.bytes > max_bytes:  # the size was unknown up front, or the file grew
        report.add(_too_big(report.bytes, max_bytes, kind, role))
    if report.records == 0:
        report.add(Problem(None, None, f"no records: the {role} file is empty; it needs one JSON record per line"))
    elif report.records > (most := limits.max_records(kind)):
        report.add(Problem(None, None, f"{report.records:,} records, more than the {most:,} allowed for {kind} (training and "
                           "validation records together): remove records or ask the administrator to raise the limit"))
    return report


def check_combined(reports: Sequence[ValidationReport], limits: DataLimits = DataLimits()) -> list[Problem]:
    """The record limit is on the sum of training and validation records (as in Bedrock); a problem if
    the files together exceed it. A file that exceeds it alone was already reported by validate_dataset."""
    if len(reports) < 2:
        return []
    most = limits.max_records(reports[0].kind)
    total = sum(r.records for r in reports)
    if total <= most or any(r.records > most for r in reports):
        return []
    counts = " + ".join(f"{r.records:,} ({r.role})" for r in reports)
    return [Problem(None, None, f"{counts} = {total:,} records, more than the {most:,} allowed for {reports[0].kind} "
                    "(training and validation records together): remove records or ask the administrator to raise the limit")]


def read_records(uri: str | os.PathLike[str], kind: DatasetKind, *, limits: DataLimits = DataLimits()) -> Iterator[dict[str, Any]]:
    """Stream the normalised records ({"prompt", "completion"}, {"messages"}, {"input"}, {"prompt", "chosen", "rejected"}
    or {"messages", "chosen", "rejected"}) of a file that
    validate_dataset passed. Raises InvalidInput at the first problem, in case the file changed since."""
    with storage.open_read(uri) as f:
        for _line, _size, parsed in _scan(f, kind, limits.max_line_bytes):
            if parsed.record is None:
                first = parsed.problems[0]
                raise InvalidInput(f"{uri} {first}: validate the file before training on it", field=first.field)
            yield parsed.record


def _scan(f: BinaryIO, kind: DatasetKind, max_line_bytes: int) -> Iterator[tuple[int, int, ParsedLine]]:
    """(line number, bytes, parsed) for each line; adds the file-level check that one form is used."""
    first: tuple[int, Form] | None = None
    switched = False
    for line, (raw, size) in enumerate(_lines(f, max_line_bytes), start=1):
        if raw is None:
            parsed = ParsedLine(problems=[Problem(line, None, f"line is {size:,} bytes, longer than the {max_line_bytes:,} "
                                                  "allowed: is each record on its own line?")])
        else:
            parsed = parse_line(raw, line, kind)
        if parsed.form is not None:
            if first is None:
                first = (line, parsed.form)
            elif parsed.form is not first[1] and not switched:
                switched = True  # the first switch is enough; every later line of the other form would repeat it
                parsed.record = None
                parsed.problems.append(Problem(line, None, f"uses the {parsed.form} form but line {first[0]} uses the "
                                               f"{first[1]} form: a file must use one form throughout"))
        yield line, size, parsed


def _lines(f: BinaryIO, max_bytes: int) -> Iterator[tuple[bytes | None, int]]:
    """(line, size) per line; a line over `max_bytes` comes as (None, size) and is skipped, never held whole."""
    while line := f.readline(max_bytes + 1):
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield line, len(line)
            continue
        size = len(line)
        while line and not line.endswith(b"\n"):
            line = f.readline(_SKIP_CHUNK)
            size += len(line)
        yield None, size


def _flush(pending: list[tuple[int, ParsedLine]], held: list[Problem], report: ValidationReport,
           count_tokens: TokenCounter, limit: RecordLimit | None) -> None:
    """Count the batch's tokens in one call, add length problems, then add the batch's problems in line order."""
    texts = [t for _, parsed in pending for t in parsed.texts]
    counts = count_tokens(texts) if texts else []
    if len(counts) != len(texts):
        raise InvalidInput(f"count_tokens returned {len(counts)} counts for {len(texts)} texts: it must return one per text")
    start = 0
    for line, parsed in pending:
        assert parsed.form is not None  # a parsed record always has its form
        end = start + len(parsed.texts)
        if parsed.alternatives:  # a preference pair: prompt + each answer is one sequence; both are trained on
            shared, answers = end - parsed.alternatives, counts[end - parsed.alternatives : end]
            prompt = sum(counts[start:shared]) + template_tokens(parsed.form, shared - start + 1)
            tokens = prompt + max(answers)
            report.tokens += sum(prompt + a for a in answers)
        else:
            tokens = sum(counts[start:end]) + template_tokens(parsed.form, len(parsed.texts))
            report.tokens += tokens
        start = end
        report.max_record_tokens = max(report.max_record_tokens, tokens)
        if report.window and tokens > report.window:
            report.split_records += 1
            report.split_windows += math.ceil(tokens / report.window)
        if limit is not None and tokens > limit.tokens:
            held.append(Problem(line, None, _too_long(parsed.form, tokens, limit)))
    held.sort(key=lambda p: p.line or 0)  # stable: a line's own problems keep their order
    for problem in held:
        report.add(problem)
    pending.clear()
    held.clear()


def _too_long(form: Form, tokens: int, limit: RecordLimit) -> str:
    counted = {
        Form.PREFERENCE: "prompt + the longer answer + EOS",
        Form.OPENAI_PREFERENCE: "message contents + the longer answer + an estimated chat template",
        Form.PROMPT_COMPLETION: "prompt + completion + EOS",
        Form.INPUT: "input + EOS",
        Form.CHAT: "message contents + an estimated chat template",
    }[form]
    return (f"record is too long by {tokens - limit.tokens:,} tokens: {counted} = {tokens:,} tokens, more than "
            f"{limit.source} of {limit.tokens:,} tokens; {limit.fix}")


def _too_big(size: int, limit: int, kind: DatasetKind, role: Role) -> Problem:
    return Problem(None, None, f"the file is {_human(size)} ({size:,} bytes), more than the {_human(limit)} allowed for a "
                   f"{kind} {role} file: split it or remove records")


def _human(n: int) -> str:
    for unit, scale in (("GB", _GB), ("MB", _MB), ("kB", 1000)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _object_size(uri: str | os.PathLike[str]) -> int | None:
    """The object's size from one listing call, or None when the listing does not show it (then the
    streamed byte count decides). The exact key sorts before every longer key with the same prefix."""
    first = next(iter(storage.list_objects(uri)), None)
    if first is not None and first.uri == str(storage.parse_uri(uri)):
        return first.size
    return None
