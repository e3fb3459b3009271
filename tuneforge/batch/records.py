"""A batch job's records: where they come from, what is done, and Bedrock's output files.

Input: inputDataConfig.s3InputDataConfig.s3Uri names one .jsonl object, or a folder (prefix) holding .jsonl objects
(nested ones too). Each non-blank line is a record `{"recordId": ..., "modelInput": {...}}`.

Output, under `<outputDataConfig.s3OutputDataConfig.s3Uri>/<jobId>/`, as Bedrock writes it:
    <input file, relative to the folder>.out   one line per record, in input order:
                                               {"recordId", "modelInput", "modelOutput"} or {..., "error": {"errorCode", "errorMessage"}}
    manifest.json.out                          totalRecordCount, processedRecordCount, successRecordCount,
                                               errorRecordCount, inputTokenCount, outputTokenCount

Progress: the job appends each finished record to `<work_dir>/results/<n>.jsonl` (n: the input file's index) as
`{"line", "ok", "inputTokens", "outputTokens", "result": <its .out line>}` and flushes it, so a restarted process
knows which lines are done and sends the worker only the others. A torn last line (the process died writing it)
is cut off when the file is reopened. `publish` writes Bedrock's files from these; a stopped or failed job
publishes what it finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge import storage
from tuneforge.errors import AccessDenied, InvalidInput, NotFound

INPUT_FIELD = "inputDataConfig.s3InputDataConfig.s3Uri"
OUTPUT_FIELD = "outputDataConfig.s3OutputDataConfig.s3Uri"
SUFFIX = ".jsonl"
MANIFEST = "manifest.json.out"
COUNT_NAMES = ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount",
               "inputTokenCount", "outputTokenCount")


@dataclass(frozen=True)
class InputFile:
    uri: str
    name: str  # relative to the input folder (the file's own name for a single file): the .out is named after it


def input_files(uri: str) -> list[InputFile]:
    """The .jsonl objects `uri` names: itself, or those under it as a folder. InvalidInput naming the field when there
    are none or the location cannot be read."""
    try:
        loc = storage.parse_uri(uri)
        if not loc.is_prefix and storage.exists(uri):
            if not uri.endswith(SUFFIX):
                raise InvalidInput(f"{uri!r} is not a JSONL file: batch input files end in {SUFFIX}")
            return [InputFile(uri, uri.rstrip("/").rsplit("/", 1)[-1])]
        prefix = uri if uri.endswith("/") else uri + "/"
        found = [info.uri for info in storage.list_objects(prefix) if info.uri.endswith(SUFFIX)]
    except (InvalidInput, NotFound, AccessDenied) as exc:  # storage's messages name the location and the fix
        raise InvalidInput(f"{INPUT_FIELD}: {exc.message}", field=INPUT_FIELD) from exc
    if not found:
        raise InvalidInput(f"{INPUT_FIELD}: nothing to read at {uri!r}: name a {SUFFIX} file, or a folder holding {SUFFIX} files",
                           field=INPUT_FIELD)
    return [InputFile(u, u[len(prefix):] if u.startswith(prefix) else u.rsplit("/", 1)[-1]) for u in found]


def lines(uri: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line, streamed. Undecodable bytes become U+FFFD, so the record
    fails as bad JSON with its line number instead of failing the file."""
    with storage.open_read(uri) as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", errors="replace").strip()
            if text:
                yield number, text


def check_jsonl(files: list[InputFile]) -> None:
    """Each file's first record is a JSON object (what tells a JSONL file from another file named .jsonl), and some
    file holds a record. The records themselves are checked one by one as the job runs (a bad one fails alone)."""
    empty = 0
    for file in files:
        try:
            first = next(lines(file.uri), None)
        except (NotFound, AccessDenied, InvalidInput) as exc:
            raise InvalidInput(f"{INPUT_FIELD}: {exc.message}", field=INPUT_FIELD) from exc
        if first is None:
            empty += 1
            continue
        number, text = first
        try:
            ok = isinstance(json.loads(text), dict)
        except ValueError:
            ok = False
        if not ok:
            raise InvalidInput(f"{INPUT_FIELD}: {file.uri} line {number} is not a JSON object: the input must be JSONL, "
                               'one {"recordId": ..., "modelInput": {...}} object per line', field=INPUT_FIELD)
    if empty == len(files):
        raise InvalidInput(f"{INPUT_FIELD}: {files[0].uri if len(files) == 1 else 'the folder'} holds no records", field=INPUT_FIELD)


@dataclass(frozen=True)
class Record:
    """One input line, read: `problem` says why it cannot be sent (it then ends as an error line that names the
    file and line)."""

    line: int
    record_id: str | None
    model_input: Any
    problem: str | None = None


def parse_record(line: int, text: str) -> Record:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Record(line, None, text, f"not valid JSON ({exc})")
    if not isinstance(data, dict):
        return Record(line, None, data, 'not a JSON object: write {"recordId": ..., "modelInput": {...}}')
    record_id, model_input = data.get("recordId"), data.get("modelInput")
    if not isinstance(record_id, str) or not record_id:
        return Record(line, None, model_input, "recordId is required and must be a non-empty string")
    if not isinstance(model_input, dict):
        return Record(line, record_id, model_input, "modelInput is required and must be a JSON object (the model's request body)")
    return Record(line, record_id, model_input)


class ResultLog:
    """The finished records of one input file, appended as they finish (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[int, dict] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = 0
        if path.exists():
            with open(path, "rb") as handle:
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        break  # torn: the process died writing it
                    entry = json.loads(raw)
                    self.done[entry["line"]] = entry
                    kept += len(raw)
            with open(path, "r+b") as handle:
                handle.truncate(kept)
        self._handle = open(path, "a", encoding="utf-8")

    def add(self, line: int, result: dict, *, ok: bool, input_tokens: int = 0, output_tokens: int = 0) -> None:
        entry = {"line": line, "ok": ok, "inputTokens": input_tokens, "outputTokens": output_tokens, "result": result}
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._handle.flush()  # a killed process loses at most the line it was writing
        self.done[line] = entry

    def close(self) -> None:
        self._handle.close()


def open_logs(work_dir: Path, files: list[InputFile]) -> list[ResultLog]:
    return [ResultLog(work_dir / "results" / f"{i}.jsonl") for i in range(len(files))]


def counts(logs: list[ResultLog], total: int) -> dict[str, int]:
    entries = [entry for log in logs for entry in log.done.values()]
    ok = [e for e in entries if e["ok"]]
    return {"totalRecordCount": total, "processedRecordCount": len(entries), "successRecordCount": len(ok),
            "errorRecordCount": len(entries) - len(ok), "inputTokenCount": sum(e["inputTokens"] for e in ok),
            "outputTokenCount": sum(e["outputTokens"] for e in ok)}


def output_folder(output_uri: str, job_id: str) -> str:
    return storage.join(output_uri if output_uri.endswith("/") else output_uri + "/", job_id + "/")


def publish(output_uri: str, job_id: str, files: list[InputFile], logs: list[ResultLog], total: int) -> dict[str, int]:
    """Write `<name>.out` for each input file and manifest.json.out; returns the manifest's counts."""
    folder = output_folder(output_uri, job_id)
    for file, log in zip(files, logs, strict=True):
        with storage.atomic_write(storage.join(folder, file.name + ".out")) as out:
            for line in sorted(log.done):
                out.write((json.dumps(log.done[line]["result"], ensure_ascii=False) + "\n").encode())
    manifest = counts(logs, total)
    storage.write_bytes(storage.join(folder, MANIFEST), json.dumps(manifest).encode())
    return manifest


def count_records(files: list[InputFile]) -> int:
    return sum(1 for file in files for _ in lines(file.uri))
