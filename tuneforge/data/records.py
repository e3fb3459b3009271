"""One line of a customization data set: bytes in, a normalised record or every problem of the line out.

Formats (Bedrock's, docs/bedrock-api.md §2a), one JSON object per line:

    FINE_TUNING             {"prompt": str, "completion": str}
                            {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
    CONTINUED_PRE_TRAINING  {"input": str}

The chat form has an optional leading system message, then user/assistant turns that alternate, and ends
with an assistant turn (what the model learns). Each line is checked on its own; whether a file mixes the
two fine-tuning forms, and the token length of a record, are checked by the streaming pass in validate.py.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# The trainer appends one EOS so the model learns where a completion (or a document) ends.
EOS_TOKENS = 1
# The chat template is applied only at training time; here we estimate it. 5 tokens per message is what
# ChatML ("<|im_start|>role\n" ... "<|im_end|>\n") and Llama 3 ("<|start_header_id|>role<|end_header_id|>\n\n"
# ... "<|eot_id|>") add with their own tokenizers, plus one begin-of-text token per conversation.
CHAT_TOKENS_PER_MESSAGE = 5
CHAT_TOKENS_PER_CONVERSATION = 1

ROLES = ("system", "user", "assistant")
_JSON_TYPES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object", type(None): "null"}


class DatasetKind(StrEnum):
    """Bedrock's customizationType values this validator knows."""

    FINE_TUNING = "FINE_TUNING"
    CONTINUED_PRE_TRAINING = "CONTINUED_PRE_TRAINING"


class Form(StrEnum):
    """The record shape a line uses; a file uses one throughout."""

    PROMPT_COMPLETION = "prompt/completion"
    CHAT = "chat (messages)"
    INPUT = "input"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data file. `line` is 1-based (None: the whole file); `field` the JSON key."""

    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else ""
        if self.field:
            where += f" [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: {self.message}" if where else self.message


@dataclass
class ParsedLine:
    """The outcome for one line. `record` is set only when the line has no problems."""

    form: Form | None = None  # None for blank lines and lines that are not a JSON object
    record: dict[str, Any] | None = None
    texts: list[str] = field(default_factory=list)  # the strings whose tokens make up the record's length
    problems: list[Problem] = field(default_factory=list)
    blank: bool = False


def template_tokens(form: Form, texts: int) -> int:
    """Tokens the trainer adds around a record's texts: the EOS, or for chat the estimated template."""
    if form is Form.CHAT:
        return CHAT_TOKENS_PER_MESSAGE * texts + CHAT_TOKENS_PER_CONVERSATION
    return EOS_TOKENS


def parse_line(raw: bytes, line: int, kind: DatasetKind) -> ParsedLine:
    """Check one line (its bytes, newline included or not) of a `kind` data file; never raises."""
    out = ParsedLine()
    if line == 1 and raw.startswith(codecs.BOM_UTF8):
        # Reported, then skipped so the rest of the line is still checked.
        out.problems.append(Problem(line, None, "the file starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without BOM"))
        raw = raw[len(codecs.BOM_UTF8) :]
    if not raw.strip():
        out.blank = True
        out.problems.append(Problem(line, None, "blank line: every line must be one JSON record; remove empty lines"))
        return out
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = f"byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line"
        out.problems.append(Problem(line, None, f"not valid UTF-8 ({bad}): save the file as UTF-8"))
        return out
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        out.problems.append(Problem(line, None, f"invalid JSON: {exc.msg} at column {exc.colno}"))
        return out
    if not isinstance(obj, dict):
        out.problems.append(Problem(line, None, f"must be a JSON object, got {_json_type(obj)}"))
        return out
    if kind == DatasetKind.CONTINUED_PRE_TRAINING:
        out.form = Form.INPUT
        _check_flat(obj, ("input",), line, out, 'a continued pre-training record is {"input": "..."}')
    elif "messages" in obj:
        out.form = Form.CHAT
        _check_chat(obj, line, out)
    else:
        out.form = Form.PROMPT_COMPLETION
        shape = 'a fine-tuning record is {"prompt": "...", "completion": "..."} or {"messages": [...]}'
        _check_flat(obj, ("prompt", "completion"), line, out, shape)
    if not out.problems:
        out.record = _normalised(obj, out.form)
    return out


def _check_flat(obj: dict[str, Any], keys: tuple[str, ...], line: int, out: ParsedLine, shape: str) -> None:
    for key in keys:
        if key not in obj:
            out.problems.append(Problem(line, key, f'missing: {shape}'))
        elif (message := _string_problem(obj[key])) is not None:
            out.problems.append(Problem(line, key, message))
        else:
            out.texts.append(obj[key])
    for key in obj:
        if key not in keys:
            out.problems.append(Problem(line, key, f"unknown key: {shape}"))


def _check_chat(obj: dict[str, Any], line: int, out: ParsedLine) -> None:
    for key in obj:
        if key != "messages":
            out.problems.append(Problem(line, key, 'unknown key: a chat record is {"messages": [...]}'))
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        got = "an empty array" if messages == [] else _json_type(messages)
        out.problems.append(Problem(line, "messages", f"must be a non-empty array of {{role, content}} objects, got {got}"))
        return
    roles: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            out.problems.append(Problem(line, where, f"must be an object with role and content, got {_json_type(message)}"))
            continue
        for key in message:
            if key not in ("role", "content"):
                out.problems.append(Problem(line, f"{where}.{key}", "unknown key: a message has only role and content"))
        role = message.get("role")
        if role not in ROLES:
            got = "nothing" if "role" not in message else repr(role) if isinstance(role, str) else _json_type(role)
            out.problems.append(Problem(line, f"{where}.role", f"must be one of {', '.join(ROLES)}, got {got}"))
        else:
            roles.append(role)
        if "content" not in message:
            out.problems.append(Problem(line, f"{where}.content", "missing: every message needs its text as content"))
        elif (problem := _string_problem(message["content"])) is not None:
            out.problems.append(Problem(line, f"{where}.content", problem))
        else:
            out.texts.append(message["content"])
    if len(roles) == len(messages):  # the order is only meaningful once every role is valid
        _check_turn_order(roles, line, out)


def _check_turn_order(roles: list[str], line: int, out: ParsedLine) -> None:
    start = 1 if roles[0] == "system" else 0
    for i in range(start, len(roles)):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if roles[i] != expected:
            after = "the system message" if i == start and start else "the first message" if i == 0 else f"a {roles[i - 1]} turn"
            out.problems.append(
                Problem(line, f"messages[{i}].role", f"expected {expected} after {after}, got {roles[i]}: an optional system "
                        "message comes first, then user and assistant turns alternate")
            )
            return
    if roles[-1] != "assistant":
        out.problems.append(Problem(line, "messages", f"must end with an assistant turn (what the model learns), ends with {roles[-1]}"))


def _string_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {_json_type(value)}"
    if not value.strip():
        return "must not be empty or only whitespace"
    return None


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _normalised(obj: dict[str, Any], form: Form) -> dict[str, Any]:
    if form is Form.CHAT:
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in obj["messages"]]}
    if form is Form.INPUT:
        return {"input": obj["input"]}
    return {"prompt": obj["prompt"], "completion": obj["completion"]}
