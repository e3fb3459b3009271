"""`bedrock-runtime`: InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream.

Which worker answers, and in which body family, is tuneforge.serving.resolve's call: foundation models on demand,
custom models through a provisioned throughput (as in Bedrock). A model that takes either family answers a Titan
`inputText` body in Titan's shape and a Llama 2 `prompt` body in Llama 2's.
Streams use AWS event-stream framing; an error after the first event travels as an exception event.
Every handler is a coroutine: a generation waits on its worker without holding a thread (tuneforge.api.generation).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tuneforge.api import eventstream
from tuneforge.api.generation import MeteredWorker, resolve, started
from tuneforge.api.services import services
from tuneforge.catalog.entries import BodyFormat
from tuneforge.errors import InvalidInput, TuneforgeError
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams, StopReason
from tuneforge.wire.bodies import parse_body, render_converse, render_response, render_stream_chunk
from tuneforge.wire.errors import stream_member

_CONVERSE_REASON = {StopReason.END: "end_turn", StopReason.LENGTH: "max_tokens", StopReason.STOP_SEQUENCE: "stop_sequence"}


async def target(request: Request, model_id: str, body: bytes | None = None) -> tuple[MeteredWorker, BodyFormat]:
    """The worker serving `model_id` (its generations counted in the metrics) and the body family to speak."""
    worker, body_format = await resolve(services(request), model_id)
    return worker, body_format or _body_family(body)


def _body_family(body: bytes | None) -> BodyFormat:
    """Titan when the body has inputText, else Llama 2 (whose parser names a missing `prompt`)."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return BodyFormat.LLAMA2  # the parser reports the bad JSON
    return BodyFormat.TITAN if isinstance(data, dict) and "inputText" in data else BodyFormat.LLAMA2


# ---- InvokeModel ----------------------------------------------------------------------------------
async def invoke_model(request: Request, params: dict[str, Any]) -> Response:
    worker, fmt = await target(request, params["modelId"], params.get("body"))
    result = await worker.agenerate(parse_body(params.get("body") or b"", fmt))
    return Response(json.dumps(render_response(result, fmt)), media_type="application/json")


async def invoke_model_with_response_stream(request: Request, params: dict[str, Any]) -> Response:
    worker, fmt = await target(request, params["modelId"], params.get("body"))
    generation = parse_body(params.get("body") or b"", fmt)
    began = time.perf_counter()
    deltas = await started(worker.astream(generation))
    first_byte = time.perf_counter() - began

    async def frames() -> AsyncIterator[bytes]:
        # the prompt's token count is known once the result arrives: intermediate chunks carry None for it,
        # and a running count of deltas (exact in the last chunk)
        tokens, first = 0, True
        try:
            async for delta in deltas:
                result = delta.result
                if result is None and not delta.text:
                    continue
                tokens = result.completion_tokens if result else tokens + 1
                chunk = render_stream_chunk(delta, fmt, first=first, prompt_tokens=result.prompt_tokens if result else None, tokens_so_far=tokens)
                if result is not None:
                    chunk["amazon-bedrock-invocationMetrics"] = {
                        "inputTokenCount": result.prompt_tokens, "outputTokenCount": result.completion_tokens,
                        "invocationLatency": int((time.perf_counter() - began) * 1000), "firstByteLatency": int(first_byte * 1000),
                    }
                first = False
                yield eventstream.chunk_event(chunk)
        except TuneforgeError as exc:
            yield _stream_error(exc)

    return _event_stream_response(frames(), headers={"X-Amzn-Bedrock-Content-Type": "application/json"})


def _stream_error(exc: TuneforgeError) -> bytes:
    return eventstream.exception_event(stream_member(exc), exc.message)


def _event_stream_response(frames: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(frames, media_type="application/vnd.amazon.eventstream", headers=headers)


# ---- Converse -------------------------------------------------------------------------------------
def _converse_request(params: dict[str, Any]) -> GenerationRequest:
    messages: list[Message] = [Message("system", "\n".join(b["text"] for b in params.get("system") or [] if "text" in b))] if params.get("system") else []
    for i, message in enumerate(params["messages"]):
        texts = []
        for j, block in enumerate(message["content"]):
            if set(block) != {"text"}:
                raise InvalidInput(f"messages[{i}].content[{j}]: only text content blocks are supported, got {sorted(block)}", field=f"messages[{i}].content")
            texts.append(block["text"])
        messages.append(Message(message["role"], "\n".join(texts)))
    config = params.get("inferenceConfig") or {}
    return GenerationRequest(messages=tuple(messages), params=SamplingParams(
        temperature=config.get("temperature", 0.7), top_p=config.get("topP", 0.9),
        max_tokens=config.get("maxTokens", 512), stop=tuple(config.get("stopSequences") or ()),
    ))


async def converse(request: Request, params: dict[str, Any]) -> dict:
    worker, _ = await target(request, params["modelId"])
    began = time.perf_counter()
    result = await worker.agenerate(_converse_request(params))
    return render_converse(result, int((time.perf_counter() - began) * 1000))


async def converse_stream(request: Request, params: dict[str, Any]) -> Response:
    worker, _ = await target(request, params["modelId"])
    generation = _converse_request(params)
    began = time.perf_counter()
    deltas = await started(worker.astream(generation))

    async def frames() -> AsyncIterator[bytes]:
        yield eventstream.event("messageStart", {"role": "assistant"})
        try:
            async for delta in deltas:
                if delta.text:
                    yield eventstream.event("contentBlockDelta", {"delta": {"text": delta.text}, "contentBlockIndex": 0})
                if delta.result is not None:
                    result = delta.result
                    yield eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
                    yield eventstream.event("messageStop", {"stopReason": _CONVERSE_REASON[result.stop_reason]})
                    yield eventstream.event("metadata", {
                        "usage": {"inputTokens": result.prompt_tokens, "outputTokens": result.completion_tokens,
                                  "totalTokens": result.prompt_tokens + result.completion_tokens},
                        "metrics": {"latencyMs": int((time.perf_counter() - began) * 1000)},
                    })
        except TuneforgeError as exc:
            yield _stream_error(exc)

    return _event_stream_response(frames())


HANDLERS = {
    "InvokeModel": invoke_model,
    "InvokeModelWithResponseStream": invoke_model_with_response_stream,
    "Converse": converse,
    "ConverseStream": converse_stream,
}
