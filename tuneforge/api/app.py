"""The HTTP server: Bedrock's REST API, the OpenAI API and the web console on one port, plus /health and /metrics (open).

`build_app(settings)` lists, top to bottom, everything the server is made of. Services are built once in the
lifespan and kept on `app.state`. The server process never imports torch: models run in worker processes and
training in job processes.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tuneforge import __version__
from tuneforge.api.agent import control as agent_control
from tuneforge.api.agent import runtime as agent_runtime
from tuneforge.api.aws import protocol
from tuneforge.api.auth import authenticate_aws
from tuneforge.api.aws.errors import aws_error, error_response
from tuneforge.api.bedrock import control, runtime, tags
from tuneforge.api.openai import routes as openai_routes
from tuneforge.api.limits import read_body
from tuneforge.api.openai.errors import http_error_response as openai_error_response
from tuneforge.api.services import Services, services
from tuneforge.console import routes as console
from tuneforge.errors import TuneforgeError
from tuneforge.settings import Settings
from tuneforge.wire.errors import NOT_IMPLEMENTED, aws_http, openai_http

# the OpenAPI 3.1 document of the non-AWS routes (AWS's are described by botocore's models), read once at import
OPENAPI = (Path(__file__).parent / "openai" / "openapi.json").read_bytes()


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def openapi(request: Request) -> Response:
    return Response(OPENAPI, media_type="application/json")


async def metrics(request: Request) -> Response:
    from tuneforge.api.metrics import CONTENT_TYPE

    body = await run_in_threadpool(services(request).metrics.render)  # the job gauge reads the database
    return Response(body, media_type=CONTENT_TYPE)


async def not_implemented(request: Request) -> Response:
    # authenticated like any AWS call (all four clients sign as `bedrock`), so strangers learn nothing of the API
    s = services(request)
    try:
        body = await read_body(request, s.settings.max_request_bytes)
        await run_in_threadpool(authenticate_aws, s, request, "bedrock", body)
    except TuneforgeError as exc:
        return aws_error("bedrock", exc)
    # boto3 turns this into a ClientError with a clear message instead of a parse failure
    return error_response(*NOT_IMPLEMENTED, f"{request.method} {request.url.path} is not implemented by tuneforge {__version__}")


async def method_not_allowed(request: Request) -> Response:
    # the open routes answer other methods with 405 (found by fuzzing: the AWS catch-all answered 501)
    return JSONResponse({"message": f"{request.method} is not allowed on {request.url.path}: use GET"}, status_code=405,
                        headers={"Allow": "GET"})


async def unrouted(request: Request, exc: HTTPException) -> Response:
    # paths no route matches (e.g. a %0A in /v1/models/{model}: found by fuzzing) get JSON, not Starlette's plain text
    message = f"{request.method} {request.url.path!r}: {exc.detail}"
    if request.url.path.startswith("/v1/"):
        return openai_error_response(openai_http(exc.status_code), message, headers=exc.headers)
    response = error_response(*aws_http(exc.status_code), message)
    response.headers.update(exc.headers or {})  # 405's Allow
    return response


def build_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.services = Services.build(settings)
        yield
        app.state.services.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *(Route(path, method_not_allowed, methods=["POST", "PUT", "PATCH", "DELETE"]) for path in ("/health", "/metrics", "/openapi.json")),
        *openai_routes.routes(),
        *protocol.routes("bedrock", control.HANDLERS),
        *protocol.routes("bedrock", tags.HANDLERS),
        *protocol.routes("bedrock-runtime", runtime.HANDLERS),
        *protocol.routes("bedrock-agent", agent_control.HANDLERS),
        *protocol.routes("bedrock-agent-runtime", agent_runtime.HANDLERS),
        *console.mount(settings),  # the web console, /console: pages over the same services
        Route("/{path:path}", not_implemented, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: unrouted})
