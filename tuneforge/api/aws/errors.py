"""Domain errors -> AWS error responses: the code and status come from tuneforge.wire.errors (one table per service).

boto3 picks the exception class from the code in `x-amzn-ErrorType`; the body is {"message": ...}.
"""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse

from tuneforge import errors
from tuneforge.wire import errors as wire_errors


def error_response(code: str, status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"message": message}, status_code=status,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def aws_error(service: str, exc: errors.TuneforgeError) -> JSONResponse:
    code, status = wire_errors.aws(service, exc)
    return error_response(code, status, exc.message)
