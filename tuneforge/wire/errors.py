"""The exception tree (tuneforge.errors) mapped to every wire format tuneforge speaks, in this one module.

    aws("bedrock-runtime", exc)   -> AwsError(code, status)   AWS rest-json: `x-amzn-ErrorType` and the HTTP status
    stream_member(exc)            -> "throttlingException"    AWS event stream: an error after the stream started
    openai(exc)                   -> OpenAIError(status, type, code)
    exit_code(exc)                -> 2                        the CLI
    aws_http(405) / openai_http(405)                          HTTP errors raised before any handler (no route)

In every table the first matching row wins, so subclasses come before their bases. The AWS codes are botocore's
error shapes of each service (tests/test_wire_errors.py checks them against the service models); ConflictException
is 400 in `bedrock` but 409 in the agent services, ServiceQuotaExceededException is 402 in `bedrock-agent`
(docs/bedrock-api.md §0). Nothing here knows HTTP frameworks: `api/` builds the responses from these values.
"""

from __future__ import annotations

from typing import NamedTuple

from tuneforge import errors


class AwsError(NamedTuple):
    code: str
    status: int


class OpenAIError(NamedTuple):
    status: int
    type: str
    code: str | None


# AWS's authentication failures, by the reason's code (what sigv4 and bearer checks raise)
AUTHENTICATION = {
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 400,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
}

_COMMON = [
    (errors.PayloadTooLarge, AwsError("ValidationException", 413)),
    (errors.InvalidInput, AwsError("ValidationException", 400)),
    (errors.NotFound, AwsError("ResourceNotFoundException", 404)),
    (errors.AccessDenied, AwsError("AccessDeniedException", 403)),
]
_THROTTLED = [(errors.Throttled, AwsError("ThrottlingException", 429))]  # services without ModelNotReadyException
_NOT_READY = [(errors.ModelNotReady, AwsError("ModelNotReadyException", 429))] + _THROTTLED
AWS = {
    "bedrock": _COMMON + _THROTTLED + [
        (errors.TooManyTags, AwsError("TooManyTagsException", 400)),
        (errors.Conflict, AwsError("ConflictException", 400)),
        (errors.QuotaExceeded, AwsError("ServiceQuotaExceededException", 400)),
        (errors.Unavailable, AwsError("InternalServerException", 500)),
        (errors.ModelFailure, AwsError("InternalServerException", 500)),
    ],
    "bedrock-runtime": _COMMON + _NOT_READY + [
        (errors.Conflict, AwsError("ConflictException", 400)),
        (errors.QuotaExceeded, AwsError("ServiceQuotaExceededException", 400)),
        (errors.Unavailable, AwsError("ServiceUnavailableException", 503)),
        (errors.ModelFailure, AwsError("ModelErrorException", 424)),
    ],
    "bedrock-agent": _COMMON + _THROTTLED + [
        (errors.Conflict, AwsError("ConflictException", 409)),
        (errors.QuotaExceeded, AwsError("ServiceQuotaExceededException", 402)),
        (errors.Unavailable, AwsError("InternalServerException", 500)),
        (errors.ModelFailure, AwsError("InternalServerException", 500)),
    ],
    "bedrock-agent-runtime": _COMMON + _NOT_READY + [
        (errors.Conflict, AwsError("ConflictException", 409)),
        (errors.QuotaExceeded, AwsError("ServiceQuotaExceededException", 400)),
        (errors.Unavailable, AwsError("DependencyFailedException", 424)),
        (errors.ModelFailure, AwsError("DependencyFailedException", 424)),
    ],
}
AWS_DEFAULT = AwsError("InternalServerException", 500)
NOT_IMPLEMENTED = AwsError("InternalFailure", 501)  # a path or method tuneforge does not serve (after authentication)

# the event-stream exception member an error becomes once a stream's first event is sent (members of the
# ResponseStream and ConverseStreamOutput unions)
STREAM = [
    (errors.InvalidInput, "validationException"),
    (errors.Throttled, "throttlingException"),
    (errors.Unavailable, "serviceUnavailableException"),
    (errors.ModelFailure, "modelStreamErrorException"),
]
STREAM_DEFAULT = "internalServerException"
# bedrock-agent-runtime's stream (RetrieveAndGenerateStreamResponseOutput): the members of its HTTP codes above
AGENT_STREAM = [
    (errors.InvalidInput, "validationException"),
    (errors.NotFound, "resourceNotFoundException"),
    (errors.AccessDenied, "accessDeniedException"),
    (errors.Throttled, "throttlingException"),
    (errors.Conflict, "conflictException"),
    (errors.QuotaExceeded, "serviceQuotaExceededException"),
    (errors.Unavailable, "dependencyFailedException"),
    (errors.ModelFailure, "dependencyFailedException"),
]

OPENAI = [
    (errors.AuthenticationFailed, OpenAIError(401, "authentication_error", "invalid_api_key")),
    (errors.PayloadTooLarge, OpenAIError(413, "invalid_request_error", "request_too_large")),
    (errors.InvalidInput, OpenAIError(400, "invalid_request_error", None)),
    (errors.NotFound, OpenAIError(404, "invalid_request_error", None)),
    (errors.AccessDenied, OpenAIError(403, "permission_error", None)),
    (errors.Throttled, OpenAIError(429, "rate_limit_error", None)),  # also a model still loading: OpenAI's clients retry 429
    (errors.Conflict, OpenAIError(409, "invalid_request_error", None)),
    (errors.QuotaExceeded, OpenAIError(429, "insufficient_quota", None)),
    (errors.Unavailable, OpenAIError(503, "server_error", None)),
    (errors.ModelFailure, OpenAIError(500, "server_error", None)),
]
OPENAI_DEFAULT = OpenAIError(500, "server_error", None)

# the CLI's exit status: 2 for a usage or input error (as argparse and Typer use it), 3 for something not found
EXIT = [
    (errors.InvalidInput, 2),
    (errors.NotFound, 3),
    (errors.TuneforgeError, 1),
]


def _first(table, exc: errors.TuneforgeError, default):
    return next((value for cls, value in table if isinstance(exc, cls)), default)


def aws(service: str, exc: errors.TuneforgeError) -> AwsError:
    if isinstance(exc, errors.AuthenticationFailed):
        return AwsError(exc.code, AUTHENTICATION[exc.code])
    return _first(AWS[service], exc, AWS_DEFAULT)


def stream_member(exc: errors.TuneforgeError) -> str:
    return _first(STREAM, exc, STREAM_DEFAULT)


def agent_stream_member(exc: errors.TuneforgeError) -> str:
    """The member of RetrieveAndGenerateStream's event stream an error after its first event becomes."""
    return _first(AGENT_STREAM, exc, STREAM_DEFAULT)


def openai(exc: errors.TuneforgeError) -> OpenAIError:
    found = _first(OPENAI, exc, OPENAI_DEFAULT)
    if isinstance(exc, errors.NotFound) and exc.field == "model":
        return found._replace(code="model_not_found")  # what OpenAI's own API answers for an unknown model
    return found


def exit_code(exc: errors.TuneforgeError) -> int:
    return _first(EXIT, exc, 1)


def aws_http(status: int) -> AwsError:
    """A request no route takes (a malformed path; a method the path does not have)."""
    return AwsError("ValidationException" if status < 500 else "InternalFailure", status)


def openai_http(status: int) -> OpenAIError:
    return OpenAIError(status, "invalid_request_error" if status < 500 else "server_error",
                       "method_not_allowed" if status == 405 else None)
