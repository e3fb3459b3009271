"""The one exception tree of tuneforge. Domain code raises these; each wire format maps them once.

    TuneforgeError
     ├── InvalidInput      a request or file is wrong; names the field, flag or line  (ValidationException)
     │    └── PayloadTooLarge  the request body is over the configured limit          (ValidationException, 413)
     ├── NotFound          no such model, job, deployment, bucket, ...                (ResourceNotFoundException)
     ├── Conflict          the name is taken or the resource is in the wrong state    (ConflictException)
     ├── QuotaExceeded     a configured limit would be passed                         (ServiceQuotaExceededException)
     │    └── TooManyTags    a resource would carry more tags than allowed            (TooManyTagsException)
     ├── AccessDenied      the caller may not do this                                 (AccessDeniedException)
     │    └── AuthenticationFailed  no valid credentials; `code` says why, as AWS names it
     ├── Throttled         too busy right now; retry later                            (ThrottlingException)
     │    └── ModelNotReady  the model is still loading                               (ModelNotReadyException)
     ├── Unavailable       a dependency is down or unreachable (hub offline, S3 down) (ServiceUnavailableException)
     └── ModelFailure      the model worker failed while serving a request            (ModelErrorException)

Every message says what happened, what was expected and what to do next. tuneforge.wire.errors maps the tree to
each wire format (AWS rest-json per service, the AWS event stream, OpenAI, the CLI's exit codes), in one place.
"""

from __future__ import annotations


class TuneforgeError(Exception):
    """Base class. `field` names the request field, CLI flag or file line the error is about."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class InvalidInput(TuneforgeError):
    pass


class PayloadTooLarge(InvalidInput):
    pass


class PromptTooLong(InvalidInput):
    """The prompt does not fit the model's context (callers that build prompts may shorten and retry)."""


class NotFound(TuneforgeError):
    pass


class Conflict(TuneforgeError):
    pass


class QuotaExceeded(TuneforgeError):
    pass


class TooManyTags(QuotaExceeded):
    pass


class AccessDenied(TuneforgeError):
    pass


class AuthenticationFailed(AccessDenied):
    """The request's credentials are missing, malformed, unknown or do not match. `code` is AWS's name for the
    reason (boto3 raises the exception of that name): MissingAuthenticationTokenException,
    IncompleteSignatureException, UnrecognizedClientException or InvalidSignatureException."""

    CODES = ("MissingAuthenticationTokenException", "IncompleteSignatureException", "UnrecognizedClientException",
             "InvalidSignatureException")

    def __init__(self, code: str, message: str) -> None:
        if code not in self.CODES:
            raise ValueError(f"{code!r} is not one of {', '.join(self.CODES)}")
        super().__init__(message, field="Authorization")
        self.code = code


class Throttled(TuneforgeError):
    pass


class ModelNotReady(Throttled):
    pass


class Unavailable(TuneforgeError):
    pass


class ModelFailure(TuneforgeError):
    pass


__all__ = [
    "TuneforgeError",
    "InvalidInput",
    "PayloadTooLarge",
    "PromptTooLong",
    "NotFound",
    "Conflict",
    "QuotaExceeded",
    "TooManyTags",
    "AccessDenied",
    "Throttled",
    "ModelNotReady",
    "Unavailable",
    "ModelFailure",
]
