"""A table of examples (a Hugging Face dataset, JSONL, CSV or Parquet) -> fine-tuning records {"prompt", "completion"}.

    table = load_table("/work/shared/data/dialogsum/train.jsonl")          # or a saved dataset directory, or a hub id
    template = PromptTemplate.parse("Summarize ...\\n\\n{dialogue}\\n\\nSummary: ", columns=table.column_names)
    conversion = table_to_records(table, template, completion_field="summary", select=1000, validation_fraction=0.1)
    write_jsonl(conversion.training, "train.jsonl")

The prompt template is Python's str.format syntax: `{column}` is replaced by the row's value, `{{` and `}}` are
literal braces. Its fields are checked against the table's columns before any row is read. Order of the row
operations: `select` keeps the first N rows, `sample` then draws N of them at random (seeded), `shuffle` shuffles
the result (seeded), and `validation_fraction` moves the last round(F * rows) rows (at least one) to the
validation set. A row whose completion is empty, or whose template fields are missing (null), is skipped and
listed in `Conversion.skipped` by its 0-based row index in the source, so nothing is dropped silently.

The `datasets` library does the reading (no torch). Loading a local JSONL/CSV/Parquet file goes through its cache
(HF_DATASETS_CACHE); a hub id needs the network, and with HF_HUB_OFFLINE set it fails with a clear error.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneforge.errors import InvalidInput, NotFound, Unavailable

if TYPE_CHECKING:
    from datasets import Dataset

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
MAX_SKIPPED_KEPT = 100  # skipped row indices kept for the report; all are counted


def decode_escapes(text: str) -> str:
    r"""Turn the two-character escapes \n, \t, \r and \\ into the characters they name; any other backslash
    stays as typed. A shell passes '...\n...' through literally, so a template typed on one line can hold
    newlines. (Python's unicode_escape would also do this but mangles every non-ASCII character.)"""
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class PromptTemplate:
    text: str
    fields: tuple[str, ...]  # the columns it reads, in order of first use

    @classmethod
    def parse(cls, text: str, *, columns: Sequence[str], option: str = "--prompt-template") -> PromptTemplate:
        """Check `text` as a str.format template whose fields are all plain column names found in `columns`."""
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise InvalidInput(f"the prompt template is not valid: {exc}; write a literal brace as {{{{ or }}}}",
                               field=option) from None
        fields: list[str] = []
        for _literal, name, spec, conversion in parts:
            if name is None:
                continue
            if not name or name.isdigit() or "." in name or "[" in name:
                raise InvalidInput(f"the prompt template has the field {{{name}}}: fields must be plain column names, such as "
                                   f"{{{columns[0] if columns else 'text'}}}; write a literal brace as {{{{ or }}}}", field=option)
            if spec or conversion:
                raise InvalidInput(f"the prompt template field {{{name}{'!' + conversion if conversion else ''}"
                                   f"{':' + spec if spec else ''}}} has a format spec or conversion: use plain {{{name}}}", field=option)
            if name not in fields:
                fields.append(name)
        if not fields:
            raise InvalidInput("the prompt template uses no column: put at least one {column} in it, e.g. {dialogue}", field=option)
        missing = [f for f in fields if f not in columns]
        if missing:
            raise InvalidInput(f"the prompt template uses {', '.join('{' + f + '}' for f in missing)}, which the table does not "
                               f"have; its columns are: {', '.join(columns)}", field=option)
        return cls(text, tuple(fields))

    def render(self, row: Mapping[str, Any]) -> str:
        return self.text.format_map({name: _as_text(row[name]) for name in self.fields})


@dataclass
class Conversion:
    training: list[dict[str, str]] = field(default_factory=list)
    validation: list[dict[str, str]] = field(default_factory=list)
    source_rows: int = 0  # rows of the table before select/sample
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (source row index, why), the first MAX_SKIPPED_KEPT
    skipped_count: int = 0


def load_table(source: str, *, offline: bool | None = None, split: str = "train") -> Dataset:
    """A local saved dataset directory (save_to_disk, or a DatasetDict with `split`), a .jsonl/.json/.csv/.parquet
    file, or a Hugging Face hub id (online only)."""
    import datasets

    datasets.disable_progress_bars()  # the CLI draws its own
    path = Path(source).expanduser()
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError as exc:
            raise InvalidInput(f"{source!r} is a directory but not a saved dataset (no dataset_info.json / state.json): "
                               f"pass a directory written by Dataset.save_to_disk, or a .jsonl, .csv or .parquet file ({exc})",
                               field="SOURCE") from None
        return _pick_split(loaded, split, source)
    if path.is_file():
        builder = FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise InvalidInput(f"{source!r}: unsupported file type {path.suffix!r}; use one of {', '.join(FILE_BUILDERS)}, "
                               "or a saved dataset directory", field="SOURCE")
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as exc:  # pyarrow and datasets raise many types on malformed files
            raise InvalidInput(f"cannot read {source!r} as {builder.upper()}: {type(exc).__name__}: {_first_line(exc)}",
                               field="SOURCE") from None
    if source.startswith(("/", ".", "~")) or not _HUB_ID.match(source) or path.suffix.lower() in FILE_BUILDERS:
        raise NotFound(f"no such file or directory: {source!r}", field="SOURCE")
    if offline if offline is not None else os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        raise Unavailable(f"{source!r} looks like a Hugging Face hub dataset id, but HF_HUB_OFFLINE is set: download it "
                          "on a connected machine (datasets.load_dataset(...).save_to_disk(DIR)) and pass DIR, or pass "
                          "a local .jsonl, .csv or .parquet file", field="SOURCE")
    try:
        return datasets.load_dataset(source, split=split)
    except (ConnectionError, OSError) as exc:
        raise Unavailable(f"could not load {source!r} from the Hugging Face hub ({_first_line(exc)}): check the id and the "
                          "network, or pass a local path", field="SOURCE") from None
    except ValueError as exc:  # e.g. an unknown split
        raise InvalidInput(f"{source!r}: {_first_line(exc)}", field="SOURCE") from None


def _pick_split(loaded: Any, split: str, source: str) -> Dataset:
    from datasets import DatasetDict

    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise InvalidInput(f"{source!r} holds the splits {', '.join(loaded)}, not {split!r}: pass --split", field="--split")
        return loaded[split]
    return loaded


def table_to_records(
    table: Dataset,
    template: PromptTemplate,
    *,
    completion_field: str,
    select: int | None = None,
    sample: int | None = None,
    shuffle: bool = False,
    seed: int = 42,
    validation_fraction: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> Conversion:
    """Rows -> records (see module docstring). `progress(done, total)` is called every 1,000 rows and at the end."""
    columns = list(table.column_names)
    if completion_field not in columns:
        raise InvalidInput(f"--completion-field {completion_field!r} is not a column; the columns are: {', '.join(columns)}",
                           field="--completion-field")
    for name, value in (("--select", select), ("--sample", sample)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidInput(f"{name} must be a positive number of rows, got {value!r}", field=name)
    if not 0.0 <= validation_fraction < 1.0:
        raise InvalidInput(f"--validation-fraction must be at least 0 and below 1, got {validation_fraction}", field="--validation-fraction")
    out = Conversion(source_rows=len(table))
    indices = list(range(len(table)))  # source row numbers, carried through for the skipped-row report
    table = table.add_column("__row__", indices) if "__row__" not in columns else table
    if select is not None:
        table = table.select(range(min(select, len(table))))
    if sample is not None:
        if sample > len(table):
            raise InvalidInput(f"--sample {sample} is more than the {len(table)} rows available"
                               f"{' after --select' if select else ''}", field="--sample")
        table = table.shuffle(seed=seed).select(range(sample))
    if shuffle:
        table = table.shuffle(seed=seed + 1 if sample is not None else seed)  # a fresh order, not the sample's again
    records: list[dict[str, str]] = []
    total = len(table)
    for done, row in enumerate(table, start=1):
        problem = _row_problem(row, template.fields, completion_field)
        if problem is None:
            records.append({"prompt": template.render(row), "completion": _as_text(row[completion_field]).strip()})
        else:
            out.skipped_count += 1
            if len(out.skipped) < MAX_SKIPPED_KEPT:
                out.skipped.append((int(row["__row__"]), problem))
        if progress is not None and (done % 1000 == 0 or done == total):
            progress(done, total)
    held_out = math.floor(validation_fraction * len(records) + 0.5) if validation_fraction else 0
    if validation_fraction and len(records) > 1:
        held_out = min(max(held_out, 1), len(records) - 1)  # both sets keep at least one record
    cut = len(records) - held_out
    out.training, out.validation = records[:cut], records[cut:]
    return out


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write one JSON object per line (UTF-8, non-ASCII kept as is), through a temp file renamed into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(target)
    return count


def _row_problem(row: Mapping[str, Any], fields: Sequence[str], completion_field: str) -> str | None:
    missing = [name for name in fields if row[name] is None]
    if missing:
        return f"{', '.join(missing)} is null"
    if row[completion_field] is None or not _as_text(row[completion_field]).strip():
        return f"{completion_field} is empty"
    return None


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
