"""The rest-json protocol of the Bedrock services, driven by botocore's own service models.

A request is parsed into the operation's input parameters exactly as boto3 would have built them: path labels,
query strings, headers and the JSON body are placed by each member's `location`, converted to the member's
type, then checked with botocore's ParamValidator (required members, types, minimums). The server checks
the rest (maximums, patterns, enums) in the services. Routes are generated from each operation's
`requestUri`, so paths, methods and status codes cannot drift from the spec.

Every route reads the body up to the configured limit, authenticates it (tuneforge.api.auth: SigV4 with the
server hashing the body), then parses and dispatches; each call is counted in the metrics, and every mutating
call is written to the audit log, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tuneforge.api import auth
from tuneforge.api.aws.errors import aws_error
from tuneforge.api.limits import read_body
from tuneforge.api.services import services
from tuneforge.errors import InvalidInput, TuneforgeError

# A handler takes the request and the parsed input; a plain function runs in the thread pool (services do
# blocking database and process work), a coroutine function runs on the event loop (streaming responses).
Handler = Callable[[Request, dict[str, Any]], Any]


@lru_cache(maxsize=8)
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def _convert(shape: Shape, raw: str, name: str) -> Any:
    try:
        if shape.type_name == "integer" or shape.type_name == "long":
            return int(raw)
        if shape.type_name in ("float", "double"):
            return float(raw)
        if shape.type_name == "boolean":
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if shape.type_name == "timestamp":
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name}: {raw!r} is not a valid {shape.type_name}", field=name) from None
    return raw


def parse_input(operation: OperationModel, path: Mapping[str, str], query: QueryParams, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    payload_member = shape.serialization.get("payload")
    json_body: dict[str, Any] | None = None
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in path:
                params[name] = path[wire]
        elif location == "querystring":
            if member.type_name == "list":
                values = query.getlist(wire)
                if values:
                    params[name] = [_convert(member.member, v, name) for v in values]
            elif wire in query:
                params[name] = _convert(member, query[wire], name)
        elif location == "header":
            if wire.lower() in headers:
                params[name] = _convert(member, headers[wire.lower()], name)
        elif name == payload_member and member.type_name in ("blob", "string"):
            params[name] = body
        else:
            if json_body is None:
                json_body = _json(body)
            if name in json_body:
                params[name] = json_body[name]
    if json_body:
        unknown = sorted(set(json_body) - set(shape.members))
        if unknown:
            raise InvalidInput(f"unknown field(s) in the request body: {', '.join(unknown)}", field=unknown[0])
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise InvalidInput(report.generate_report().replace("\n", " "), field=None)
    return params


def _json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


def _path_template(request_uri: str) -> str:
    path = request_uri.split("?", 1)[0]
    # every label may carry an ARN with (decoded) slashes in it, so each matches across segments
    return path.replace("+}", "}").replace("}", ":path}")


def routes(service: str, handlers: Mapping[str, Handler]) -> list[Route]:
    """One Starlette route per implemented operation, most specific paths first."""
    model = service_model(service)
    built = []
    for op_name, handler in handlers.items():
        operation = model.operation_model(op_name)
        template = _path_template(operation.http["requestUri"])
        built.append((template, Route(template, _endpoint(service, operation, handler), methods=[operation.http["method"]], name=f"{service}:{op_name}")))
    # most literal characters first: `/jobs/{id}/stop` must be tried before `/jobs/{id}` (labels match slashes)
    built.sort(key=lambda item: -len(re.sub(r"\{[^}]*\}", "", item[0])))
    return [route for _, route in built]


def _endpoint(service: str, operation: OperationModel, handler: Handler):
    """Read (bounded), authenticate, parse, call the handler, serialize; then count it, and audit it if it mutates."""
    status = operation.http.get("responseCode", 200)
    mutating = auth.is_mutating(operation.name)

    async def endpoint(request: Request) -> Response:
        s = services(request)
        started = time.perf_counter()
        key = params = result = None
        try:
            body = await read_body(request, s.settings.max_request_bytes)
            key = await run_in_threadpool(auth.authenticate_aws, s, request, service, body)
            auth.authorize(key, operation.name)
            params = parse_input(operation, request.path_params, request.query_params, request.headers, body)
            if asyncio.iscoroutinefunction(handler):
                result = await handler(request, params)
            else:
                result = await run_in_threadpool(handler, request, params)
            response = result if isinstance(result, Response) else JSONResponse(result if result is not None else {}, status_code=status)
        except TuneforgeError as exc:
            response = aws_error(service, exc)
        s.metrics.observe(service, operation.name, response.status_code, time.perf_counter() - started)
        if mutating:
            await run_in_threadpool(
                s.audit.record, access_key_id=key.access_key_id if key else None, service=service, operation=operation.name,
                resource=_resource(operation, params or dict(request.path_params), result), status_code=response.status_code,
                error_code=response.headers.get("x-amzn-ErrorType"),
            )
        return response

    endpoint.__name__ = operation.name
    return endpoint


def _resource(operation: OperationModel, params: dict[str, Any], result: Any) -> str | None:
    """What an audited call acted on: the ARN it returned, else its path label, else the name it gave."""
    if isinstance(result, dict):
        for name, value in result.items():
            if name.endswith("Arn") and isinstance(value, str):
                return value
    members = operation.input_shape.members if operation.input_shape else {}
    for name, member in members.items():
        if member.serialization.get("location") == "uri" and isinstance(params.get(name), str):
            return params[name]
    for name in ("resourceARN", "jobName", "modelName", "provisionedModelName", "name"):
        if isinstance(params.get(name), str):
            return params[name]
    return None
