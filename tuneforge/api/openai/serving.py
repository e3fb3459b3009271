"""OpenAI chat and text completions over tuneforge's workers (the same pool and resolution as Bedrock's runtime).

Streams are server-sent events: one `data: {chunk}` per delta, a final chunk with `finish_reason`, a usage chunk
(`choices: []`) when `stream_options.include_usage` is set, then `data: [DONE]`. An error after the stream has
started travels as `data: {"error": {...}}`, which OpenAI's clients raise. Generations are coroutines: none holds a
thread while it waits on its worker (tuneforge.api.generation).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

from tuneforge.api.generation import MeteredWorker, resolve, started
from tuneforge.api.openai.errors import error_body
from starlette.concurrency import run_in_threadpool

from tuneforge.api.openai.protocol import FINISH_REASON, ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from tuneforge.api.services import Services
from tuneforge.catalog.entries import Modality
from tuneforge.errors import InvalidInput, NotFound, TuneforgeError
from tuneforge.inference.params import Delta, GenerationResult
from tuneforge.models.specs import embedding_spec
from tuneforge.serving.deployments import DeploymentStatus


def list_models(s: Services) -> dict:
    deployments = [{"id": d.provisioned_model_name, "object": "model", "created": int(d.created_at.timestamp()), "owned_by": "provisioned"}
                   for d in s.deployments.list(status=DeploymentStatus.IN_SERVICE.value).deployments]
    custom = [_custom(m) for m in s.registry.list(status="Active").models]
    return {"object": "list", "data": [_model(m) for m in s.catalog.list(output_modality=Modality.TEXT)] + custom + deployments}


def get_model(s: Services, model_id: str) -> dict:
    try:
        return _model(s.catalog.get(model_id))
    except NotFound:
        try:
            return _custom(s.registry.get(model_id))
        except NotFound:
            raise NotFound(f"no model {model_id!r}: see GET /v1/models", field="model") from None


def _custom(m) -> dict:
    return {"id": m.model_name, "object": "model", "created": int(m.created_at.timestamp()), "owned_by": "user"}


def _model(m) -> dict:
    return {"id": m.model_id, "object": "model", "created": 0, "owned_by": m.provider_name}


async def _worker(s: Services, model: str) -> MeteredWorker:
    # a fine-tuned model is served by its name at once, as OpenAI's fine_tuned_model is
    return (await resolve(s, model, field="model", custom_on_demand=True))[0]


def _usage(result: GenerationResult) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


async def chat_completion(s: Services, request: ChatCompletionRequest) -> dict:
    result = await (await _worker(s, request.model)).agenerate(request.to_generation())
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": request.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": FINISH_REASON[result.stop_reason], "logprobs": None}],
        "usage": _usage(result),
    }


async def completion(s: Services, request: CompletionRequest) -> dict:
    result = await (await _worker(s, request.model)).agenerate(request.to_generation())
    return {
        "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": request.model,
        "choices": [{"index": 0, "text": result.text, "finish_reason": FINISH_REASON[result.stop_reason], "logprobs": None}],
        "usage": _usage(result),
    }


async def embeddings(s: Services, request: EmbeddingRequest) -> dict:
    """Vectors from a catalog embedding model, in the worker the knowledge bases' queries use (one per model)."""
    texts = request.texts()
    worker = await run_in_threadpool(_embedding_worker, s, request.model)
    embedded = await worker.aembed(texts)
    dimension = embedded.vectors.shape[1]
    if request.dimensions is not None and request.dimensions != dimension:
        raise InvalidInput(f"dimensions: {request.model} makes {dimension}-dimensional vectors and cannot shorten them; "
                           f"leave dimensions out or give {dimension}", field="dimensions")
    s.metrics.count_input_tokens(request.model, embedded.tokens)
    encode = (lambda v: base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")) if request.encoding_format == "base64" \
        else (lambda v: v.tolist())
    return {
        "object": "list", "model": request.model,
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(embedded.vectors)],
        "usage": {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens},
    }


def _embedding_worker(s: Services, model: str):
    try:
        entry = s.catalog.get(model)
    except NotFound:
        raise NotFound(f"no embedding model {model!r}: see `tuneforge models list --output-modality EMBEDDING`", field="model") from None
    if Modality.EMBEDDING not in s.catalog.resolve(entry.model_id).output_modalities:
        raise InvalidInput(f"model: {model!r} is a text model, not an embedding model (e.g. sentence-transformers.all-minilm-l6-v2)",
                           field="model")
    return s.pool.get(f"embedding:{entry.model_id}", lambda: embedding_spec(s.catalog, entry.model_id))


async def chat_completion_stream(s: Services, request: ChatCompletionRequest) -> AsyncIterator[bytes]:
    deltas = await started((await _worker(s, request.model)).astream(request.to_generation()))
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()), "model": request.model}

    def choice(delta: dict, finish: str | None) -> dict:
        return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}

    return _sse(deltas, base, request.include_usage,
                first=lambda: choice({"role": "assistant", "content": ""}, None),
                text=lambda t: choice({"content": t}, None),
                last=lambda reason: choice({}, reason))


async def completion_stream(s: Services, request: CompletionRequest) -> AsyncIterator[bytes]:
    deltas = await started((await _worker(s, request.model)).astream(request.to_generation()))
    base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": request.model}

    def choice(text: str, finish: str | None) -> dict:
        return {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}

    return _sse(deltas, base, request.include_usage, first=None, text=lambda t: choice(t, None), last=lambda reason: choice("", reason))


async def _sse(deltas: AsyncIterator[Delta], base: dict, include_usage: bool, *, first, text, last) -> AsyncIterator[bytes]:
    def event(data: dict) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    def chunk(choice: dict) -> bytes:
        return event({**base, "choices": [choice], **({"usage": None} if include_usage else {})})

    if first is not None:
        yield chunk(first())
    try:
        async for delta in deltas:
            if delta.text:
                yield chunk(text(delta.text))
            if delta.result is not None:
                yield chunk(last(FINISH_REASON[delta.result.stop_reason]))
                if include_usage:
                    yield event({**base, "choices": [], "usage": _usage(delta.result)})
    except TuneforgeError as exc:
        yield event(error_body(exc)[1])
    yield b"data: [DONE]\n\n"
