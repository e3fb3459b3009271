"""OpenAI's wire shapes (requests validated by pydantic, converted once to tuneforge's GenerationRequest)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneforge.errors import InvalidInput
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams, StopReason

FINISH_REASON = {StopReason.END: "stop", StopReason.STOP_SEQUENCE: "stop", StopReason.LENGTH: "length"}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class _Wire(BaseModel):
    # OpenAI clients send fields tuneforge does not use (user, metadata, ...): ignored, not refused
    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ChatMessage(_Wire):
    role: str
    content: str | list[TextPart]


class StreamOptions(_Wire):
    include_usage: bool = False


class _Sampling(_Wire):
    model: str = Field(min_length=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)  # one choice per request
    stream: bool = False
    stream_options: StreamOptions | None = None

    def sampling(self, max_tokens: int) -> SamplingParams:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=max_tokens, stop=stop, seed=self.seed)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def to_generation(self) -> GenerationRequest:
        messages = []
        for i, m in enumerate(self.messages):
            if m.role not in _ROLES:
                raise InvalidInput(f"messages[{i}].role must be one of {', '.join(_ROLES)}, got {m.role!r}", field=f"messages[{i}].role")
            text = m.content if isinstance(m.content, str) else "\n".join(part.text for part in m.content)
            messages.append(Message(_ROLES[m.role], text))
        return GenerationRequest(messages=tuple(messages), params=self.sampling(self.max_completion_tokens or self.max_tokens or 512))


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int = Field(default=16, ge=1)  # OpenAI's default for completions

    def to_generation(self) -> GenerationRequest:
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidInput(f"prompt: give one prompt per request, got {len(prompt)}", field="prompt")
            prompt = prompt[0]
        return GenerationRequest(prompt=prompt, params=self.sampling(self.max_tokens))


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit on texts per request


class EmbeddingRequest(_Wire):
    model: str = Field(min_length=1)
    # token-id arrays are accepted by the schema so that the refusal can say why (see `texts`)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts:
            raise InvalidInput("input: give at least one text", field="input")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise InvalidInput(f"input: at most {MAX_EMBEDDING_INPUTS} texts per request, got {len(texts)}", field="input")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput("input: token ids are not accepted (tuneforge's embedding models have their own "
                                   "tokenizers): send the text itself", field="input")
            if not text:
                raise InvalidInput(f"input[{i}]: an empty string cannot be embedded", field=f"input[{i}]")
        return texts


def parse(cls: type[_Wire], body: bytes) -> _Wire:
    """The request model, or InvalidInput naming the first bad field."""
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise InvalidInput(f"{where}: {first['msg']}{more}", field=where) from None


# ---- fine-tuning ------------------------------------------------------------------------------------------------
class FineTuningHyperparameters(_Wire):
    n_epochs: Literal["auto"] | int | None = None
    batch_size: Literal["auto"] | int | None = None
    learning_rate_multiplier: Literal["auto"] | float | None = None


class DpoHyperparameters(FineTuningHyperparameters):
    beta: Literal["auto"] | float | None = None


class SupervisedMethod(_Wire):
    hyperparameters: FineTuningHyperparameters | None = None


class DpoMethod(_Wire):
    hyperparameters: DpoHyperparameters | None = None


class FineTuningMethod(_Wire):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None


class FineTuningJobRequest(_Wire):
    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    suffix: str | None = Field(default=None, min_length=1, max_length=64)
    hyperparameters: DpoHyperparameters | None = None  # OpenAI's deprecated top level; beta is refused unless method is dpo
    method: FineTuningMethod | None = None
    seed: int | None = Field(default=None, ge=0, le=2_147_483_647)
    metadata: dict[str, str] | None = None
    integrations: list[dict] | None = None

    @property
    def dpo(self) -> bool:
        return self.method is not None and self.method.type == "dpo"

    def chosen_hyperparameters(self) -> DpoHyperparameters:
        """The hyperparameters given at the top level (deprecated by OpenAI) or in method.<type>, not both; beta only
        with method dpo (tuneforge's PREFERENCE_TUNING)."""
        if self.method is not None and self.method.type not in ("supervised", "dpo"):
            raise InvalidInput(f"method.type: tuneforge's /v1/fine_tuning/jobs runs 'supervised' fine-tuning and 'dpo'; "
                               f"{self.method.type!r} is not available", field="method.type")
        kind = self.method.type if self.method else "supervised"
        other = "supervised" if kind == "dpo" else "dpo"
        if self.method is not None and getattr(self.method, other) is not None:
            raise InvalidInput(f"method.{other}: method.type is {kind!r}; give its settings in method.{kind}", field=f"method.{other}")
        section = getattr(self.method, kind) if self.method else None
        nested = section.hyperparameters if section else None
        if nested is not None and self.hyperparameters is not None:
            raise InvalidInput(f"hyperparameters: give them in method.{kind}.hyperparameters or at the top level, not both",
                               field="hyperparameters")
        chosen = nested or self.hyperparameters or FineTuningHyperparameters()
        return DpoHyperparameters.model_validate(chosen.model_dump())


# ---- batches ----------------------------------------------------------------------------------------------------
class BatchRequest(_Wire):
    input_file_id: str = Field(min_length=1)
    endpoint: str = Field(min_length=1)
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
