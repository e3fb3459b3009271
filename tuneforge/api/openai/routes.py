"""The /v1 routes: authenticate the bearer, parse, call one serving function, serialize (JSON, SSE or bytes).

Calls that change something (uploading or deleting a file, creating or cancelling a fine-tuning job) are refused to
read-only keys and written to the audit log, as the AWS operations are.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tuneforge.api.auth import authenticate_bearer, authorize
from tuneforge.api.limits import read_body
from tuneforge.api.openai import batches, files, fine_tuning, serving
from tuneforge.api.openai.errors import error_response, http_error_response
from tuneforge.api.openai.protocol import BatchRequest, ChatCompletionRequest, CompletionRequest, EmbeddingRequest, FineTuningJobRequest, parse
from tuneforge.api.services import Services, services
from tuneforge.errors import InvalidInput, NotFound, TuneforgeError
from tuneforge.wire.errors import openai_http

SERVICE = "openai"  # the metrics' and the audit log's service label


# a handler is a coroutine (generation awaits its worker on the loop); blocking work inside it goes to the thread pool
def _route(path: str, method: str, operation: str, handle: Callable[[Services, Request, bytes], Awaitable[object]], *,
           mutating: bool = False, reads_body: bool = True) -> Route:
    async def endpoint(request: Request) -> Response:
        s = services(request)
        started = time.perf_counter()
        key = result = None
        try:
            # an upload reads its own (larger, streamed) body; every other call's is bounded here
            body = await read_body(request, s.settings.max_request_bytes) if reads_body else b""
            key = await run_in_threadpool(authenticate_bearer, s, request.headers.get("authorization"))
            if mutating:
                authorize(key, operation)
            result = await handle(s, request, body)
            if isinstance(result, Response):
                response: Response = result
            elif isinstance(result, dict):
                response = JSONResponse(result)
            else:
                response = StreamingResponse(result, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        except TuneforgeError as exc:
            response = error_response(exc)
        s.metrics.observe(SERVICE, operation, response.status_code, time.perf_counter() - started)
        if mutating:
            resource = result.get("id") if isinstance(result, dict) else None
            await run_in_threadpool(s.audit.record, access_key_id=key.access_key_id if key else None, service=SERVICE,
                                    operation=operation, resource=resource or request.url.path, status_code=response.status_code,
                                    error_code=None if response.status_code < 400 else str(response.status_code))
        return response

    endpoint.__name__ = operation
    return Route(path, endpoint, methods=[method], name=f"openai:{operation}")


def _blocking(call: Callable[..., object]) -> Callable[[Services, Request, bytes], Awaitable[object]]:
    """A handler doing database or file work: in the thread pool, with the path's parameters."""
    return lambda s, request, body: run_in_threadpool(call, s, request, body)


def _known_query(request: Request, *names: str, prefix: str | None = None) -> None:
    """Refuse a query parameter the operation does not take: a misspelt filter must not silently list everything."""
    for name in request.query_params:
        if name not in names and not (prefix and name.startswith(prefix)):
            raise InvalidInput(f"unknown query parameter {name!r}: this operation takes {', '.join(names)}", field=name)


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}", field=name) from None


async def _chat(s: Services, request: Request, body: bytes):
    parsed = parse(ChatCompletionRequest, body)
    return await (serving.chat_completion_stream(s, parsed) if parsed.stream else serving.chat_completion(s, parsed))


async def _completion(s: Services, request: Request, body: bytes):
    parsed = parse(CompletionRequest, body)
    return await (serving.completion_stream(s, parsed) if parsed.stream else serving.completion(s, parsed))


async def _embeddings(s: Services, request: Request, body: bytes):
    return await serving.embeddings(s, parse(EmbeddingRequest, body))


async def _upload(s: Services, request: Request, body: bytes):
    upload, purpose = await files.read_upload(s, request)
    try:
        return await run_in_threadpool(files.upload, s, upload, purpose)
    finally:
        await upload.close()


def _list_files(s: Services, request: Request, body: bytes):
    _known_query(request, "purpose", "limit", "after", "order")
    q = request.query_params
    return files.list_files(s, purpose=q.get("purpose"), limit=_int(request, "limit", 10_000), after=q.get("after"),
                            order=q.get("order", "desc"))


def _file_content(s: Services, request: Request, body: bytes):
    row = s.files.get(request.path_params["file_id"])
    return FileResponse(row.uri, media_type="application/octet-stream", filename=row.filename)


def _job_page(call):
    def handle(s: Services, request: Request, body: bytes):
        _known_query(request, "after", "limit")
        return call(s, request.path_params["job_id"], after=request.query_params.get("after"),
                    limit=_int(request, "limit", 20 if call is fine_tuning.events else 10))
    return _blocking(handle)


def _list_jobs(s: Services, request: Request, body: bytes):
    _known_query(request, "after", "limit", prefix="metadata[")
    # metadata[key]=value filters, as OpenAI's clients send them
    metadata = {k[len("metadata["):-1]: v for k, v in request.query_params.items() if k.startswith("metadata[") and k.endswith("]")}
    return fine_tuning.list_jobs(s, after=request.query_params.get("after"), limit=_int(request, "limit", 20), metadata=metadata)


def _list_batches(s: Services, request: Request, body: bytes):
    _known_query(request, "after", "limit")
    return batches.list_batches(s, after=request.query_params.get("after"), limit=_int(request, "limit", 20))


_PATHS = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/files", "/v1/fine_tuning/jobs", "/v1/batches"}


async def _unknown(request: Request) -> Response:
    # OpenAI's clients expect their error JSON here, not the AWS one of the server's catch-all
    path = request.url.path
    if path in _PATHS or (path.startswith("/v1/models/") and request.method != "GET"):
        # a known path with another method: 405, as HTTP (and the OpenAPI document) says, not 404
        allow = "GET" if path.startswith("/v1/models") else "GET, POST" if path in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/batches") else "POST"
        return http_error_response(openai_http(405), f"{request.method} is not allowed on {path}", headers={"Allow": allow})
    return error_response(NotFound(f"{request.method} {request.url.path} is not an endpoint of tuneforge's OpenAI API: "
                                   "it serves /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/files, "
                                   "/v1/fine_tuning/jobs and /v1/batches"))


def routes() -> list[Route]:
    return [
        _route("/v1/models", "GET", "ListModels", lambda s, request, body: run_in_threadpool(serving.list_models, s)),
        _route("/v1/models/{model:path}", "GET", "RetrieveModel",
               lambda s, request, body: run_in_threadpool(serving.get_model, s, request.path_params["model"])),
        _route("/v1/chat/completions", "POST", "ChatCompletions", _chat),
        _route("/v1/completions", "POST", "Completions", _completion),
        _route("/v1/embeddings", "POST", "Embeddings", _embeddings),
        _route("/v1/files", "POST", "CreateFile", _upload, mutating=True, reads_body=False),
        _route("/v1/files", "GET", "ListFiles", _blocking(_list_files)),
        _route("/v1/files/{file_id}", "GET", "RetrieveFile",
               _blocking(lambda s, request, body: files.file_object(s.files.get(request.path_params["file_id"])))),
        _route("/v1/files/{file_id}", "DELETE", "DeleteFile",
               _blocking(lambda s, request, body: files.delete(s, request.path_params["file_id"])), mutating=True),
        _route("/v1/files/{file_id}/content", "GET", "RetrieveFileContent", _blocking(_file_content)),
        _route("/v1/fine_tuning/jobs", "POST", "CreateFineTuningJob",
               _blocking(lambda s, request, body: fine_tuning.create(s, parse(FineTuningJobRequest, body))), mutating=True),
        _route("/v1/fine_tuning/jobs", "GET", "ListFineTuningJobs", _blocking(_list_jobs)),
        _route("/v1/fine_tuning/jobs/{job_id}", "GET", "RetrieveFineTuningJob",
               _blocking(lambda s, request, body: fine_tuning.get(s, request.path_params["job_id"]))),
        _route("/v1/fine_tuning/jobs/{job_id}/cancel", "POST", "CancelFineTuningJob",
               _blocking(lambda s, request, body: fine_tuning.cancel(s, request.path_params["job_id"])), mutating=True),
        _route("/v1/fine_tuning/jobs/{job_id}/events", "GET", "ListFineTuningEvents", _job_page(fine_tuning.events)),
        _route("/v1/fine_tuning/jobs/{job_id}/checkpoints", "GET", "ListFineTuningCheckpoints", _job_page(fine_tuning.checkpoints)),
        _route("/v1/batches", "POST", "CreateBatch",
               _blocking(lambda s, request, body: batches.create(s, parse(BatchRequest, body))), mutating=True),
        _route("/v1/batches", "GET", "ListBatches", _blocking(_list_batches)),
        _route("/v1/batches/{batch_id}", "GET", "RetrieveBatch",
               _blocking(lambda s, request, body: batches.get(s, request.path_params["batch_id"]))),
        _route("/v1/batches/{batch_id}/cancel", "POST", "CancelBatch",
               _blocking(lambda s, request, body: batches.cancel(s, request.path_params["batch_id"])), mutating=True),
        Route("/v1/{path:path}", _unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"]),  # every method schemathesis probes: all answers are OpenAI JSON
    ]
