"""Domain errors -> OpenAI's error JSON, in one table: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from starlette.responses import JSONResponse

from tuneforge import errors
from tuneforge.api.sigv4 import SignatureError

# (exception class, HTTP status, type, code); the first matching row wins
_TABLE = [
    (SignatureError, 401, "authentication_error", "invalid_api_key"),
    (errors.PayloadTooLarge, 413, "invalid_request_error", "request_too_large"),
    (errors.InvalidInput, 400, "invalid_request_error", None),
    (errors.NotFound, 404, "invalid_request_error", None),
    (errors.AccessDenied, 403, "permission_error", None),
    (errors.Throttled, 429, "rate_limit_error", None),  # includes a model still loading: OpenAI clients retry 429
    (errors.Conflict, 409, "invalid_request_error", None),
    (errors.QuotaExceeded, 429, "insufficient_quota", None),
    (errors.Unavailable, 503, "server_error", None),
    (errors.ModelFailure, 500, "server_error", None),
]


def error_body(exc: errors.TuneforgeError) -> tuple[int, dict]:
    for cls, status, kind, code in _TABLE:
        if isinstance(exc, cls):
            if isinstance(exc, errors.NotFound) and exc.field == "model":
                code = "model_not_found"
            return status, {"error": {"message": exc.message, "type": kind, "param": exc.field, "code": code}}
    return 500, {"error": {"message": exc.message, "type": "server_error", "param": None, "code": None}}


def error_response(exc: errors.TuneforgeError) -> JSONResponse:
    status, body = error_body(exc)
    return JSONResponse(body, status_code=status)
