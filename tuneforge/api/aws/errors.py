"""Domain errors -> AWS error responses, in one table per service (docs/bedrock-api.md §0).

boto3 picks the exception class from the code in `x-amzn-ErrorType`; the body is {"message": ...}.
ConflictException is 400 in `bedrock` but 409 in the agent services; ServiceQuotaExceededException is 402 in
`bedrock-agent`.
"""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse

from tuneforge import errors

# (exception class, code, status); the first matching row wins, so subclasses come before their bases
_COMMON = [
    (errors.PayloadTooLarge, "ValidationException", 413),
    (errors.InvalidInput, "ValidationException", 400),
    (errors.NotFound, "ResourceNotFoundException", 404),
    (errors.AccessDenied, "AccessDeniedException", 403),
    (errors.ModelNotReady, "ModelNotReadyException", 429),
    (errors.Throttled, "ThrottlingException", 429),
]
TABLES = {
    "bedrock": _COMMON + [
        (errors.TooManyTags, "TooManyTagsException", 400),
        (errors.Conflict, "ConflictException", 400),
        (errors.QuotaExceeded, "ServiceQuotaExceededException", 400),
        (errors.Unavailable, "InternalServerException", 500),
        (errors.ModelFailure, "InternalServerException", 500),
    ],
    "bedrock-runtime": _COMMON + [
        (errors.Conflict, "ConflictException", 400),
        (errors.QuotaExceeded, "ServiceQuotaExceededException", 400),
        (errors.Unavailable, "ServiceUnavailableException", 503),
        (errors.ModelFailure, "ModelErrorException", 424),
    ],
    "bedrock-agent": _COMMON + [
        (errors.Conflict, "ConflictException", 409),
        (errors.QuotaExceeded, "ServiceQuotaExceededException", 402),
        (errors.Unavailable, "InternalServerException", 500),
        (errors.ModelFailure, "InternalServerException", 500),
    ],
    "bedrock-agent-runtime": _COMMON + [
        (errors.Conflict, "ConflictException", 409),
        (errors.QuotaExceeded, "ServiceQuotaExceededException", 400),
        (errors.Unavailable, "DependencyFailedException", 424),
        (errors.ModelFailure, "DependencyFailedException", 424),
    ],
}


def code_for(service: str, exc: errors.TuneforgeError) -> tuple[str, int]:
    for cls, code, status in TABLES[service]:
        if isinstance(exc, cls):
            return code, status
    return "InternalServerException", 500


def error_response(code: str, status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"message": message}, status_code=status,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def aws_error(service: str, exc: errors.TuneforgeError) -> JSONResponse:
    code, status = code_for(service, exc)
    return error_response(code, status, exc.message)
