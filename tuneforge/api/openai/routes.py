"""The /v1 routes: authenticate the bearer, parse, call one serving function, serialize (JSON or SSE)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tuneforge.api.auth import authenticate_bearer
from tuneforge.api.limits import read_body
from tuneforge.api.openai import serving
from tuneforge.api.openai.errors import error_response, http_error_response
from tuneforge.api.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, parse
from tuneforge.api.services import Services, services
from tuneforge.errors import NotFound, TuneforgeError
from tuneforge.wire.errors import openai_http

SERVICE = "openai"  # the metrics' service label


# a handler is a coroutine (generation awaits its worker on the loop); blocking work inside it goes to the thread pool
def _route(path: str, method: str, operation: str, handle: Callable[[Services, Request, bytes], Awaitable[object]]) -> Route:
    async def endpoint(request: Request) -> Response:
        s = services(request)
        started = time.perf_counter()
        try:
            body = await read_body(request, s.settings.max_request_bytes)
            await run_in_threadpool(authenticate_bearer, s, request.headers.get("authorization"))
            result = await handle(s, request, body)
            if isinstance(result, dict):
                response: Response = JSONResponse(result)
            else:
                response = StreamingResponse(result, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        except TuneforgeError as exc:
            response = error_response(exc)
        s.metrics.observe(SERVICE, operation, response.status_code, time.perf_counter() - started)
        return response

    endpoint.__name__ = operation
    return Route(path, endpoint, methods=[method], name=f"openai:{operation}")


async def _chat(s: Services, request: Request, body: bytes):
    parsed = parse(ChatCompletionRequest, body)
    return await (serving.chat_completion_stream(s, parsed) if parsed.stream else serving.chat_completion(s, parsed))


async def _completion(s: Services, request: Request, body: bytes):
    parsed = parse(CompletionRequest, body)
    return await (serving.completion_stream(s, parsed) if parsed.stream else serving.completion(s, parsed))


async def _embeddings(s: Services, request: Request, body: bytes):
    return await serving.embeddings(s, parse(EmbeddingRequest, body))


_PATHS = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"}


async def _unknown(request: Request) -> Response:
    # OpenAI's clients expect their error JSON here, not the AWS one of the server's catch-all
    path = request.url.path
    if path in _PATHS or (path.startswith("/v1/models/") and request.method != "GET"):
        # a known path with another method: 405, as HTTP (and the OpenAPI document) says, not 404
        return http_error_response(openai_http(405), f"{request.method} is not allowed on {path}",
                                   headers={"Allow": "GET" if path.startswith("/v1/models") else "POST"})
    return error_response(NotFound(f"{request.method} {request.url.path} is not an endpoint of tuneforge's OpenAI API: "
                                   "it serves /v1/models, /v1/chat/completions, /v1/completions and /v1/embeddings"))


def routes() -> list[Route]:
    return [
        _route("/v1/models", "GET", "ListModels", lambda s, request, body: run_in_threadpool(serving.list_models, s)),
        _route("/v1/models/{model:path}", "GET", "RetrieveModel",
               lambda s, request, body: run_in_threadpool(serving.get_model, s, request.path_params["model"])),
        _route("/v1/chat/completions", "POST", "ChatCompletions", _chat),
        _route("/v1/completions", "POST", "Completions", _completion),
        _route("/v1/embeddings", "POST", "Embeddings", _embeddings),
        Route("/v1/{path:path}", _unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"]),  # every method schemathesis probes: all answers are OpenAI JSON
    ]
