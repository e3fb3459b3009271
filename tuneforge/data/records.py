"""One line of a customization data set: bytes in, a normalised record or every problem of the line out.

Formats (Bedrock's, docs/bedrock-api.md §2a), one JSON object per line:

    FINE_TUNING             {"prompt": str, "completion": str}
                            {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
    CONTINUED_PRE_TRAINING  {"input": str}
    PREFERENCE_TUNING       {"prompt": str, "chosen": str, "rejected": str}            (tuneforge's, for DPO)
                            {"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content": str}],
                             "non_preferred_output": [{"role": "assistant", "content": str}]}   (OpenAI's preference format)

The chat form has an optional leading system message, then user/assistant turns that alternate, and ends
with an assistant turn (what the model learns). OpenAI's preference input is the same conversation ending with a
user turn (its `tools` may be present only empty, `parallel_tool_calls` is ignored), each output exactly one
assistant message; it is normalised to {"messages", "chosen", "rejected"}. The two answers of a pair must differ
(compared without surrounding whitespace): a pair of equal answers teaches nothing and makes DPO's margin zero.
Each line is checked on its own; whether a file mixes two forms, and the token length of a record, are checked by
the streaming pass in validate.py.
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
    PREFERENCE_TUNING = "PREFERENCE_TUNING"


class Form(StrEnum):
    """The record shape a line uses; a file uses one throughout."""

    PROMPT_COMPLETION = "prompt/completion"
    CHAT = "chat (messages)"
    INPUT = "input"
    PREFERENCE = "prompt/chosen/rejected"
    OPENAI_PREFERENCE = "OpenAI preference (input/preferred_output/non_preferred_output)"


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
    # preference pairs: the last `alternatives` texts are answers of which each makes its own sequence with the
    # texts before them (the prompt), so a record is as long as its prompt and its longest answer
    alternatives: int = 0
    problems: list[Problem] = field(default_factory=list)
    blank: bool = False


def template_tokens(form: Form, texts: int) -> int:
    """Tokens the trainer adds around a record's texts (one sequence): the EOS, or for chat the estimated template."""
    if form in (Form.CHAT, Form.OPENAI_PREFERENCE):
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
    if kind == DatasetKind.PREFERENCE_TUNING:
        _check_preference(obj, line, out)
    elif kind == DatasetKind.CONTINUED_PRE_TRAINING:
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


_PREFERENCE_SHAPE = 'a preference record is {"prompt": "...", "chosen": "...", "rejected": "..."}'
_OPENAI_KEYS = ("input", "preferred_output", "non_preferred_output")
_OPENAI_SHAPE = ('an OpenAI preference record is {"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", '
                 '"content": "..."}], "non_preferred_output": [...]}')


def _check_preference(obj: dict[str, Any], line: int, out: ParsedLine) -> None:
    if any(key in obj for key in _OPENAI_KEYS):
        out.form = Form.OPENAI_PREFERENCE
        _check_openai_preference(obj, line, out)
        chosen, rejected = "preferred_output[0].content", "non_preferred_output[0].content"
    else:
        out.form = Form.PREFERENCE
        _check_flat(obj, ("prompt", "chosen", "rejected"), line, out, _PREFERENCE_SHAPE)
        chosen, rejected = "chosen", "rejected"
    out.alternatives = 2
    if not out.problems and out.texts[-1].strip() == out.texts[-2].strip():
        out.problems.append(Problem(line, rejected, f"is the same text as {chosen}: a preference pair needs two different "
                                    "answers, the preferred one and a worse one"))


def _check_openai_preference(obj: dict[str, Any], line: int, out: ParsedLine) -> None:
    for key in obj:
        if key not in _OPENAI_KEYS:
            out.problems.append(Problem(line, key, f"unknown key: {_OPENAI_SHAPE}"))
    given = obj.get("input")
    if "input" not in obj:
        out.problems.append(Problem(line, "input", f"missing: {_OPENAI_SHAPE}"))
    elif not isinstance(given, dict) or "messages" not in given:
        out.problems.append(Problem(line, "input", f"must be an object with messages, got {_json_type(given)}: {_OPENAI_SHAPE}"))
    else:
        for key in given:
            if key == "tools" and given[key] == []:
                continue  # OpenAI's examples send an empty tool list; tuneforge trains no tool calls
            if key not in ("messages", "parallel_tool_calls"):
                out.problems.append(Problem(line, f"input.{key}", "unknown key: input holds messages (tools are not trained)"))
        _check_messages(given["messages"], line, out, "input.messages", last="user")
    for key in _OPENAI_KEYS[1:]:
        answer = obj.get(key)
        if key not in obj:
            out.problems.append(Problem(line, key, f"missing: {_OPENAI_SHAPE}"))
        elif not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict):
            out.problems.append(Problem(line, key, f"must be an array of exactly one assistant message, got {_json_type(answer)}"
                                        + (f" of {len(answer)}" if isinstance(answer, list) else "")))
        else:
            message = answer[0]
            if message.get("role") != "assistant":
                out.problems.append(Problem(line, f"{key}[0].role", f"must be assistant, got {message.get('role')!r}"))
            for extra in set(message) - {"role", "content"}:
                out.problems.append(Problem(line, f"{key}[0].{extra}", "unknown key: a message has only role and content"))
            if "content" not in message:
                out.problems.append(Problem(line, f"{key}[0].content", "missing: the answer's text"))
            elif (problem := _string_problem(message["content"])) is not None:
                out.problems.append(Problem(line, f"{key}[0].content", problem))
            else:
                out.texts.append(message["content"])


def _check_chat(obj: dict[str, Any], line: int, out: ParsedLine) -> None:
    for key in obj:
        if key != "messages":
            out.problems.append(Problem(line, key, 'unknown key: a chat record is {"messages": [...]}'))
    _check_messages(obj["messages"], line, out, "messages", last="assistant")


def _check_messages(messages: object, line: int, out: ParsedLine, name: str, *, last: str) -> None:
    if not isinstance(messages, list) or not messages:
        got = "an empty array" if messages == [] else _json_type(messages)
        out.problems.append(Problem(line, name, f"must be a non-empty array of {{role, content}} objects, got {got}"))
        return
    roles: list[str] = []
    for i, message in enumerate(messages):
        where = f"{name}[{i}]"
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
        _check_turn_order(roles, line, out, name, last)


def _check_turn_order(roles: list[str], line: int, out: ParsedLine, name: str = "messages", last: str = "assistant") -> None:
    start = 1 if roles[0] == "system" else 0
    for i in range(start, len(roles)):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if roles[i] != expected:
            after = "the system message" if i == start and start else "the first message" if i == 0 else f"a {roles[i - 1]} turn"
            out.problems.append(
                Problem(line, f"{name}[{i}].role", f"expected {expected} after {after}, got {roles[i]}: an optional system "
                        "message comes first, then user and assistant turns alternate")
            )
            return
    if roles[-1] != last:
        why = "(what the model learns)" if last == "assistant" else "(the answers follow it)"
        out.problems.append(Problem(line, name, f"must end with a{'n' if last == 'assistant' else ''} {last} turn {why}, ends with {roles[-1]}"))


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
    if form is Form.PREFERENCE:
        return {"prompt": obj["prompt"], "chosen": obj["chosen"], "rejected": obj["rejected"]}
    if form is Form.OPENAI_PREFERENCE:
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in obj["input"]["messages"]],
                "chosen": obj["preferred_output"][0]["content"], "rejected": obj["non_preferred_output"][0]["content"]}
    return {"prompt": obj["prompt"], "completion": obj["completion"]}
