"""Requests and results of text generation, independent of any wire format or engine (no torch here).

A request carries either a raw `prompt` (sent to the model as is) or chat `messages` (rendered with the
model's chat template by the engine). Ranges are checked once, here, and errors name the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from tuneforge.errors import InvalidInput

ROLES = ("system", "user", "assistant")
MAX_STOP_SEQUENCES = 16  # vLLM/OpenAI allow a handful; more only slows the per-token check


class StopReason(StrEnum):
    END = "end"  # the model produced its end-of-sequence token
    LENGTH = "length"  # max tokens (or the context window) reached
    STOP_SEQUENCE = "stop_sequence"  # one of the request's stop sequences appeared


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.9  # nucleus mass; 0 keeps only the most likely token
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # keep generating past the end-of-sequence token (vLLM's ignore_eos): benchmarks need a fixed output length
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        _check_number("temperature", self.temperature, 0.0, 2.0)
        _check_number("top_p", self.top_p, 0.0, 1.0)
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be a positive integer, got {self.max_tokens!r}", field="max_tokens")
        if len(self.stop) > MAX_STOP_SEQUENCES:
            raise InvalidInput(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(self.stop)}", field="stop")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise InvalidInput(f"stop sequences must be non-empty strings, got {s!r}", field="stop")
        if not isinstance(self.ignore_eos, bool):
            raise InvalidInput(f"ignore_eos must be true or false, got {self.ignore_eos!r}", field="ignore_eos")


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidInput(f"{name} must be a number between {low} and {high}, got {value!r}", field=name)
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}", field=name)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    params: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise InvalidInput("give either a prompt or chat messages, not both and not neither", field="prompt")
        if self.prompt is not None and (not isinstance(self.prompt, str) or not self.prompt.strip()):
            raise InvalidInput("prompt must be a non-empty string", field="prompt")
        if self.messages is not None:
            if not self.messages:
                raise InvalidInput("messages must not be empty", field="messages")
            for i, m in enumerate(self.messages):
                if m.role not in ROLES:
                    raise InvalidInput(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m.role!r}", field=f"messages[{i}].role")
                if not isinstance(m.content, str):
                    raise InvalidInput(f"messages[{i}].content must be a string", field=f"messages[{i}].content")
            if self.messages[-1].role == "assistant" and len(self.messages) == 1:
                raise InvalidInput("the conversation must contain a user message", field="messages")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GenerationRequest":
        messages = data.get("messages")
        params = dict(data.get("params") or {})
        params["stop"] = tuple(params.get("stop") or ())
        return cls(
            prompt=data.get("prompt"),
            messages=tuple(Message(**m) for m in messages) if messages is not None else None,
            params=SamplingParams(**params),
        )


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    stop_reason: StopReason
    first_token_seconds: float = 0.0
    total_seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: dict) -> "GenerationResult":
        return cls(**{**data, "stop_reason": StopReason(data["stop_reason"])})


@dataclass(frozen=True)
class Delta:
    """A piece of streamed text. The last delta of a stream carries the `result`."""

    text: str
    result: GenerationResult | None = None
