"""The playground's generation: text deltas of one chat, from the same async worker path the APIs use.

    lines = await stream_chat(s, model, messages, params)   # async iterator of NDJSON lines (bytes)

Each line is `{"text": "..."}` as tokens decode, then `{"done": true, "promptTokens", "completionTokens",
"stopReason"}`, or `{"error": "..."}` when the model fails after it started. A model id is resolved as OpenAI's
`model` is (a custom model named directly is served on demand: serving.resolve's custom_on_demand); the lookup runs in
a thread, then the stream is a coroutine awaiting its worker, so no thread is held while the model works.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from tuneforge.errors import InvalidInput, TuneforgeError
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams

MAX_MESSAGES = 64


def request_from(body: dict) -> tuple[str, GenerationRequest]:
    """(model, request) from the playground's JSON body; every problem names its field."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("model: pick a model to ask", field="model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_MESSAGES:
        raise InvalidInput(f"messages: give 1-{MAX_MESSAGES} messages", field="messages")
    messages = tuple(Message(str(m.get("role", "")), m.get("content")) for m in raw if isinstance(m, dict))
    stop = body.get("stop") or []
    if not isinstance(stop, list):
        raise InvalidInput("stop: a list of stop sequences", field="stop")
    try:
        params = SamplingParams(temperature=float(body.get("temperature", 0.7)), top_p=float(body.get("top_p", 0.9)),
                                max_tokens=int(body.get("max_tokens", 128)), stop=tuple(str(x) for x in stop if x))
    except (TypeError, ValueError):
        raise InvalidInput("temperature and top p are numbers, max tokens an integer", field="params") from None
    return model, GenerationRequest(messages=messages, params=params)


async def stream_chat(s, model: str, request: GenerationRequest) -> AsyncIterator[bytes]:
    """Resolve and start (errors here are raised, so the reply can be an error page of its own), then stream."""
    target = await run_in_threadpool(s.resolver.target, model, field="model", custom_on_demand=True)
    deltas = target.worker.astream(request)
    first = await anext(deltas)  # an error in starting raises here, before any byte is sent

    async def lines() -> AsyncIterator[bytes]:
        try:
            delta = first
            while True:
                if delta.text:
                    yield _line({"text": delta.text})
                if delta.result is not None:
                    s.metrics.count_tokens(target.model_id, delta.result)  # as the APIs count their streams
                    yield _line({"done": True, "promptTokens": delta.result.prompt_tokens,
                                 "completionTokens": delta.result.completion_tokens,
                                 "stopReason": delta.result.stop_reason.value})
                    break
                delta = await anext(deltas)
        except StopAsyncIteration:
            pass
        except TuneforgeError as exc:
            yield _line({"error": exc.message})
        finally:
            await deltas.aclose()  # at once: a closed page frees the worker's batch slot

    return lines()


def _line(data: dict) -> bytes:
    return json.dumps(data).encode() + b"\n"
