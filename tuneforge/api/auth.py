"""Who is calling: SigV4 (boto3) or a bearer token (OpenAI clients), checked against tuneforge's access keys.

    key = authenticate_aws(services, request, service, body)   # ActiveKey, or None with --no-auth
    authorize(key, operation)                                  # read-only keys: reads and invocations only
    key = authenticate_bearer(services, request.headers.get("authorization"))

Failures raise `SignatureError` (with AWS's code and status: MissingAuthenticationTokenException 403,
IncompleteSignatureException 400, UnrecognizedClientException 403, InvalidSignatureException 403, the last also
for a request signed outside the clock-skew window) or AccessDenied (AccessDeniedException 403: a read-only key
calling a mutating operation). Bearer tokens are `<secretAccessKey>` or `<accessKeyId>:<secretAccessKey>`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from tuneforge.api.services import Services
from tuneforge.api.sigv4 import SignatureError, parse_bearer, verify_request
from tuneforge.errors import AccessDenied
from tuneforge.security.keys import ActiveKey

# Operations that change nothing. Anything else counts as mutating (denied to read-only keys, audited): a new
# operation is safe by default. Invocations read models; they are billed but change no resource.
_READ_PREFIXES = ("Get", "List", "Invoke", "Converse", "Retrieve", "CountTokens", "ApplyGuardrail")
# Services whose botocore model allows httpBearerAuth besides SigV4 (docs/bedrock-api.md §1).
_BEARER_SERVICES = ("bedrock", "bedrock-runtime")


def is_mutating(operation: str) -> bool:
    return not operation.startswith(_READ_PREFIXES)


def authenticate_aws(s: Services, request: Request, service: str, body: bytes) -> ActiveKey | None:
    if not s.settings.auth:
        return None
    bearer = parse_bearer(request.headers.get("authorization"))
    if bearer is not None and service in _BEARER_SERVICES:
        key = _bearer_key(s, bearer)
    else:
        found: list[ActiveKey] = []

        def lookup(access_key_id: str) -> str | None:
            key = s.access_keys.lookup(access_key_id)
            if key is not None:
                found.append(key)
            return key.secret if key else None

        verify_request(
            request.method, request.scope["raw_path"].decode("latin-1"), request.scope["query_string"].decode("latin-1"),
            request.headers, body, lookup, now=datetime.now(UTC), max_skew=timedelta(seconds=s.settings.clock_skew_seconds),
        )
        key = found[0]
    return key


def authorize(key: ActiveKey | None, operation: str) -> None:
    """Raise AccessDenied when a read-only key calls a mutating operation (None: authentication is off)."""
    if key is not None and key.read_only and is_mutating(operation):
        raise AccessDenied(f"access key {key.access_key_id} is read-only and cannot call {operation}: "
                           "use a key created without --read-only")


def authenticate_bearer(s: Services, authorization: str | None) -> ActiveKey | None:
    """The key a bearer token names (OpenAI API); None when authentication is off."""
    if not s.settings.auth:
        return None
    token = parse_bearer(authorization)
    if token is None:
        raise SignatureError("MissingAuthenticationTokenException",
                             "Missing bearer token: send 'Authorization: Bearer <secretAccessKey>' from `tuneforge keys create`")
    return _bearer_key(s, token)


def _bearer_key(s: Services, token: str) -> ActiveKey:
    key_id, colon, secret = token.partition(":")
    if colon:
        key = s.access_keys.lookup(key_id)
        if key is not None and not secrets.compare_digest(key.secret.encode(), secret.encode()):
            key = None
    else:
        key = s.access_keys.lookup_secret(token)
    if key is None:
        raise SignatureError("UnrecognizedClientException", "The security token included in the request is invalid.")
    return key
