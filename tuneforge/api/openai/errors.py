"""Domain errors -> OpenAI's error JSON, {"error": {"message", "type", "param", "code"}}; the status, type and code
come from tuneforge.wire.errors."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from tuneforge import errors
from tuneforge.wire.errors import OpenAIError, openai


def error_body(exc: errors.TuneforgeError) -> tuple[int, dict]:
    status, kind, code = openai(exc)
    return status, {"error": {"message": exc.message, "type": kind, "param": exc.field, "code": code}}


def error_response(exc: errors.TuneforgeError) -> JSONResponse:
    status, body = error_body(exc)
    return JSONResponse(body, status_code=status)


def http_error_response(error: OpenAIError, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """For a request no handler took (no route, a method the path does not have)."""
    return JSONResponse({"error": {"message": message, "type": error.type, "param": None, "code": error.code}},
                        status_code=error.status, headers=headers)
