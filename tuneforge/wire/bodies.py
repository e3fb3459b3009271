"""Bedrock model-native InvokeModel bodies, mapped onto GenerationRequest / GenerationResult.

Two families, chosen per catalog entry (FoundationModel.body_format):

- Llama 2: {"prompt", "temperature" 0-1 (0.5), "top_p" 0-1 (0.9), "max_gen_len" 1-2048 (512)}
  -> {"generation", "prompt_token_count", "generation_token_count", "stop_reason": "stop"|"length"}.
  A prompt written in Llama 2 chat markup (`<s>[INST] <<SYS>>..<</SYS>> .. [/INST]`) is turned into chat
  messages, so the serving model renders them with its own chat template: unmodified Llama 2 code gets a
  proper chat turn from any chat model. Plain prompts are sent as they are.
- Titan text: {"inputText", "textGenerationConfig": {"temperature" 0-1 (0.7), "topP" 0-1 (0.9),
  "maxTokenCount" 1-8192 (512), "stopSequences": [..]}}
  -> {"inputTextTokenCount", "results": [{"tokenCount", "outputText", "completionReason"}]}.
  Titan's conversational form ("User: ...\nBot:") likewise becomes chat messages; other text is sent as is.

Converse requests (`parse_converse`, `render_converse`): text content blocks, system, inferenceConfig; Converse and
ConverseStream parse them from botocore's shape, a batch job from a record's modelInput, so every field is checked.
Streaming chunks follow Bedrock's shapes for each family. No torch, no HTTP here.
"""

from __future__ import annotations

import json
import re

from tuneforge.catalog.entries import BodyFormat
from tuneforge.errors import InvalidInput
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult, Message, SamplingParams, StopReason

LLAMA2_KEYS = {"prompt", "temperature", "top_p", "max_gen_len"}
TITAN_KEYS = {"inputText", "textGenerationConfig"}
TITAN_CONFIG_KEYS = {"temperature", "topP", "maxTokenCount", "stopSequences"}

_INST = re.compile(
    r"\s*(?:<s>)?\s*\[INST\]\s*(?:<<SYS>>\s*(?P<sys>.*?)\s*<</SYS>>\s*)?(?P<user>.*?)\s*\[/INST\]"
    r"(?:\s*(?P<assistant>.*?)\s*</s>)?",
    re.DOTALL,
)


def load_json_body(body: bytes | str | dict) -> dict:
    if isinstance(body, dict):
        return body
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the request body is not valid JSON ({exc})", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    return data


def llama2_prompt_to_messages(prompt: str) -> tuple[Message, ...] | None:
    """Parse Llama 2 chat markup into messages; None when the prompt is not (entirely) in that markup."""
    if "[INST]" not in prompt:
        return None
    messages: list[Message] = []
    pos = 0
    while pos < len(prompt) and prompt[pos:].strip():
        match = _INST.match(prompt, pos)
        if not match:
            return None
        if match["sys"]:
            if messages:
                return None  # a system prompt in a later turn has no chat-template equivalent
            messages.append(Message("system", match["sys"]))
        messages.append(Message("user", match["user"]))
        if match["assistant"] is not None:
            messages.append(Message("assistant", match["assistant"]))
        pos = match.end()
    if not messages or messages[-1].role != "user":
        return None
    return tuple(messages)


def _unknown(data: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidInput(
            f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}", field=extra[0]
        )


def _number(data: dict, key: str, default: float, low: float, high: float, where: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidInput(f"{where}{key} must be a number between {low} and {high}, got {value!r}", field=key)
    return float(value)


def _integer(data: dict, key: str, default: int, low: int, high: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{where}{key} must be an integer between {low} and {high}, got {value!r}", field=key)
    return value


def parse_body(body: bytes | str | dict, body_format: BodyFormat) -> GenerationRequest:
    data = load_json_body(body)
    if body_format is BodyFormat.LLAMA2:
        _unknown(data, LLAMA2_KEYS, "Llama 2 body")
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInput("prompt is required and must be a non-empty string", field="prompt")
        params = SamplingParams(
            temperature=_number(data, "temperature", 0.5, 0.0, 1.0, ""),
            top_p=_number(data, "top_p", 0.9, 0.0, 1.0, ""),
            max_tokens=_integer(data, "max_gen_len", 512, 1, 2048, ""),
        )
        messages = llama2_prompt_to_messages(prompt)
        if messages is not None:
            return GenerationRequest(messages=messages, params=params)
        return GenerationRequest(prompt=prompt, params=params)
    _unknown(data, TITAN_KEYS, "Titan body")
    text = data.get("inputText")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("inputText is required and must be a non-empty string", field="inputText")
    config = data.get("textGenerationConfig") or {}
    if not isinstance(config, dict):
        raise InvalidInput("textGenerationConfig must be an object", field="textGenerationConfig")
    _unknown(config, TITAN_CONFIG_KEYS, "textGenerationConfig")
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise InvalidInput("textGenerationConfig.stopSequences must be a list of non-empty strings", field="stopSequences")
    params = SamplingParams(
        temperature=_number(config, "temperature", 0.7, 0.0, 1.0, "textGenerationConfig."),
        top_p=_number(config, "topP", 0.9, 0.0, 1.0, "textGenerationConfig."),
        max_tokens=_integer(config, "maxTokenCount", 512, 1, 8192, "textGenerationConfig."),
        stop=tuple(stops),
    )
    messages = titan_prompt_to_messages(text)
    if messages is not None:
        return GenerationRequest(messages=messages, params=params)
    return GenerationRequest(prompt=text, params=params)


_TITAN_TURN = re.compile(r"(?:^|\n)\s*(User|Bot):[ \t]?")


def titan_prompt_to_messages(text: str) -> tuple[Message, ...] | None:
    """Titan's conversational convention ("User: ...\nBot:", the form AWS documents for chat) as chat messages,
    so the serving model's own chat template renders it; None when the text does not end with an open "Bot:" turn.
    Text before the first "User:" becomes the system prompt."""
    parts = _TITAN_TURN.split(text)
    if len(parts) < 5 or parts[-2] != "Bot" or parts[-1].strip() or parts[1] != "User":
        return None
    messages = [Message("system", parts[0].strip())] if parts[0].strip() else []
    for speaker, content in zip(parts[1:-2:2], parts[2:-2:2]):
        messages.append(Message("user" if speaker == "User" else "assistant", content.strip()))
    return tuple(messages)


_LLAMA2_REASON = {StopReason.END: "stop", StopReason.STOP_SEQUENCE: "stop", StopReason.LENGTH: "length"}
_TITAN_REASON = {StopReason.END: "FINISH", StopReason.STOP_SEQUENCE: "STOP_CRITERIA_MET", StopReason.LENGTH: "LENGTH"}


def render_response(result: GenerationResult, body_format: BodyFormat) -> dict:
    if body_format is BodyFormat.LLAMA2:
        return {
            "generation": result.text,
            "prompt_token_count": result.prompt_tokens,
            "generation_token_count": result.completion_tokens,
            "stop_reason": _LLAMA2_REASON[result.stop_reason],
        }
    return {
        "inputTextTokenCount": result.prompt_tokens,
        "results": [
            {
                "tokenCount": result.completion_tokens,
                "outputText": result.text,
                "completionReason": _TITAN_REASON[result.stop_reason],
            }
        ],
    }


def render_stream_chunk(delta: Delta, body_format: BodyFormat, *, first: bool, prompt_tokens: int | None, tokens_so_far: int) -> dict:
    """One streamed chunk in the family's shape; the last one (delta.result set) carries the stop reason."""
    final = delta.result
    if body_format is BodyFormat.LLAMA2:
        return {
            "generation": delta.text,
            "prompt_token_count": prompt_tokens if first else None,
            "generation_token_count": tokens_so_far,
            "stop_reason": _LLAMA2_REASON[final.stop_reason] if final else None,
        }
    return {
        "outputText": delta.text,
        "index": 0,
        "totalOutputTextTokenCount": tokens_so_far,
        "completionReason": _TITAN_REASON[final.stop_reason] if final else None,
        "inputTextTokenCount": prompt_tokens if first else None,
    }


def family_of(data: dict) -> BodyFormat:
    """A body's family when the model takes either: Titan when it has inputText, else Llama 2 (whose parser names
    a missing `prompt`)."""
    return BodyFormat.TITAN if "inputText" in data else BodyFormat.LLAMA2


CONVERSE_KEYS = {"messages", "system", "inferenceConfig"}
CONVERSE_CONFIG_KEYS = {"maxTokens", "temperature", "topP", "stopSequences"}
_CONVERSE_REASON = {StopReason.END: "end_turn", StopReason.LENGTH: "max_tokens", StopReason.STOP_SEQUENCE: "stop_sequence"}


def parse_converse(data: dict) -> GenerationRequest:
    """A Converse request (messages, system, inferenceConfig) as a GenerationRequest; only text blocks are served."""
    _unknown(data, CONVERSE_KEYS, "Converse request")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidInput("messages is required and must be a non-empty list", field="messages")
    system = data.get("system") or []
    if not isinstance(system, list) or not all(isinstance(b, dict) and isinstance(b.get("text"), str) for b in system):
        raise InvalidInput('system must be a list of {"text": ...} blocks', field="system")
    messages: list[Message] = [Message("system", "\n".join(b["text"] for b in system))] if system else []
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidInput(f"messages[{i}].role must be user or assistant", field=f"messages[{i}].role")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise InvalidInput(f"messages[{i}].content must be a non-empty list of content blocks", field=f"messages[{i}].content")
        texts = []
        for j, block in enumerate(content):
            if not isinstance(block, dict) or set(block) != {"text"} or not isinstance(block["text"], str):
                got = sorted(block) if isinstance(block, dict) else type(block).__name__
                raise InvalidInput(f"messages[{i}].content[{j}]: only text content blocks are supported, got {got}",
                                   field=f"messages[{i}].content")
            texts.append(block["text"])
        messages.append(Message(message["role"], "\n".join(texts)))
    config = data.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise InvalidInput("inferenceConfig must be an object", field="inferenceConfig")
    _unknown(config, CONVERSE_CONFIG_KEYS, "inferenceConfig")
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise InvalidInput("inferenceConfig.stopSequences must be a list of non-empty strings", field="stopSequences")
    return GenerationRequest(messages=tuple(messages), params=SamplingParams(
        temperature=_number(config, "temperature", 0.7, 0.0, 1.0, "inferenceConfig."),
        top_p=_number(config, "topP", 0.9, 0.0, 1.0, "inferenceConfig."),
        max_tokens=_integer(config, "maxTokens", 512, 1, 8192, "inferenceConfig."),
        stop=tuple(stops),
    ))


def render_converse(result: GenerationResult, latency_ms: int) -> dict:
    """Converse's response body."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": result.text}]}},
        "stopReason": _CONVERSE_REASON[result.stop_reason],
        "usage": {"inputTokens": result.prompt_tokens, "outputTokens": result.completion_tokens,
                  "totalTokens": result.prompt_tokens + result.completion_tokens},
        "metrics": {"latencyMs": latency_ms},
    }
