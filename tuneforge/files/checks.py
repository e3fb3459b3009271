"""What a file of each purpose must hold, checked line by line before it is stored (nothing half-accepted).

    fine-tune  customization records, the validator's rules without token lengths (the job checks those against its
               base model's tokenizer and context, which an upload does not know): {"messages": [...]} or
               {"prompt", "completion"}, one form per file; or preference pairs for DPO ({"prompt", "chosen",
               "rejected"} or OpenAI's {"input", "preferred_output", "non_preferred_output"}), told apart by the
               first record's keys (OpenAI's purpose is "fine-tune" for both)
    batch      OpenAI's batch request lines {"custom_id", "method": "POST", "url", "body"}, custom ids unique
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from tuneforge import storage
from tuneforge.data.records import DatasetKind
from tuneforge.data.validate import validate_dataset
from tuneforge.errors import InvalidInput


class Purpose(StrEnum):
    FINE_TUNE = "fine-tune"
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"  # written by tuneforge (a batch's results and errors), never uploaded


UPLOADABLE = (Purpose.FINE_TUNE, Purpose.BATCH)


BATCH_URLS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
MAX_BATCH_REQUESTS = 50_000  # OpenAI's limit per batch file
_BATCH_KEYS = ("custom_id", "method", "url", "body")


def parse_purpose(value: str, *, uploading: bool = True) -> Purpose:
    allowed = UPLOADABLE if uploading else tuple(Purpose)
    try:
        purpose = Purpose(value)
    except ValueError:
        purpose = None
    if purpose not in allowed:
        raise InvalidInput(f"purpose: tuneforge keeps files for {', '.join(repr(p.value) for p in allowed)}, got {value!r}",
                           field="purpose")
    return purpose


def check_file(path: Path, purpose: Purpose, filename: str) -> int:
    """The number of records in the file at `path`, or InvalidInput naming the first bad lines and fields."""
    if purpose is Purpose.FINE_TUNE:
        # zero tokens per text: the shapes are checked here, lengths by the job that knows its tokenizer
        report = validate_dataset(path, fine_tune_kind(path), count_tokens=lambda texts: [0] * len(texts))
        if report.records == 0:
            raise InvalidInput(f"{filename} holds no records: a fine-tuning file is one JSON record per line", field="file")
        if not report.ok:
            shown = "; ".join(str(p) for p in report.problems[:5])
            more = f" (and {report.problem_count - 5} more)" if report.problem_count > 5 else ""
            raise InvalidInput(f"{filename} is not a fine-tuning file: {shown}{more}", field="file")
        return report.records
    return _check_batch(path, filename)


PREFERENCE_KEYS = {"chosen", "rejected", "preferred_output", "non_preferred_output"}


def fine_tune_kind(uri: str | Path) -> DatasetKind:
    """PREFERENCE_TUNING when the first record names a preferred or rejected answer, else FINE_TUNING."""
    with storage.open_read(uri) as f:
        for raw in f:
            if raw.strip():
                try:
                    first = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    break  # the validator reports it with its line
                if isinstance(first, dict) and PREFERENCE_KEYS & set(first):
                    return DatasetKind.PREFERENCE_TUNING
                break
    return DatasetKind.FINE_TUNING


def _check_batch(path: Path, filename: str) -> int:
    seen: dict[str, int] = {}
    problems: list[str] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if len(problems) >= 5:
                break
            problem = _batch_line(raw, number, seen)
            if problem:
                problems.append(f"line {number} {problem}")
    if not problems and not seen:
        problems.append("the file holds no requests: a batch file is one request per line")
    if len(seen) > MAX_BATCH_REQUESTS:
        problems.append(f"at most {MAX_BATCH_REQUESTS} requests per batch file, got {len(seen)}")
    if problems:
        raise InvalidInput(f"{filename} is not a batch file: " + "; ".join(problems), field="file")
    return len(seen)


def _batch_line(raw: bytes, number: int, seen: dict[str, int]) -> str | None:
    if not raw.strip():
        return "is blank: every line must be one request; remove empty lines"
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"is not valid JSON ({exc})"
    if not isinstance(obj, dict):
        return "must be a JSON object {\"custom_id\", \"method\", \"url\", \"body\"}"
    for key in _BATCH_KEYS:
        if key not in obj:
            return f"[{key}] is missing: a request line is {{\"custom_id\", \"method\": \"POST\", \"url\", \"body\"}}"
    unknown = sorted(set(obj) - set(_BATCH_KEYS))
    if unknown:
        return f"[{unknown[0]}] is not a key of a request line"
    custom_id = obj["custom_id"]
    if not isinstance(custom_id, str) or not custom_id:
        return "[custom_id] must be a non-empty string"
    if custom_id in seen:
        return f"[custom_id] {custom_id!r} is used on line {seen[custom_id]} too: custom ids must be unique"
    if obj["method"] != "POST":
        return f"[method] must be \"POST\", got {obj['method']!r}"
    if obj["url"] not in BATCH_URLS:
        return f"[url] must be one of {', '.join(BATCH_URLS)}, got {obj['url']!r}"
    if not isinstance(obj["body"], dict):
        return "[body] must be the request's JSON object"
    seen[custom_id] = number
    return None
