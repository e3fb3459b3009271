"""Verify AWS Signature Version 4 on incoming requests, the way boto3 signs them for the four Bedrock clients.

    access_key = verify_request("POST", raw_path, raw_query, headers, body, secrets.get, now=datetime.now(UTC))

Everything comes from the request as received: `raw_path` still percent-encoded (ASGI `scope["raw_path"]`, not the
decoded path), `raw_query` without the `?`, and every header (a mapping; repeated headers may come as repeated
items, as Starlette's `Headers.items()` gives them, or already joined with ","). The result is the access key id;
any failure raises `SignatureError` with the code and message AWS would send, so boto3 raises the same `ClientError`.

What botocore signs, and so what we rebuild (docs/bedrock-api.md §1, §7; botocore.auth.SigV4Auth):
- scope `<yyyymmdd>/<region>/bedrock/aws4_request`: all four clients sign as `bedrock`; any region is accepted.
- canonical URI: the path as sent, dot segments and repeated slashes removed, then percent-encoded *again*
  (`%3A` in an ARN is signed as `%253A`).
- canonical query: pairs sorted by encoded key then value, each encoded with RFC 3986 unreserved characters kept.
- payload hash: computed here; boto3 does not send `X-Amz-Content-SHA256` to these services.

Limits: only the `Authorization` header form (no presigned `X-Amz-Signature` query auth, no SigV4a, no
`STREAMING-*` or `UNSIGNED-PAYLOAD` bodies). Session tokens are accepted and not checked: tuneforge has no STS.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from tuneforge.errors import AuthenticationFailed
from tuneforge.wire.errors import AUTHENTICATION

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "bedrock"
MAX_SKEW = timedelta(minutes=5)  # what AWS allows between the client's clock and ours

_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class SignatureError(AuthenticationFailed):
    """A request failed authentication. `code` is the AWS error code boto3 reports, `status` its HTTP status."""

    @property
    def status(self) -> int:
        return AUTHENTICATION[self.code]


@dataclass(frozen=True)
class _Authorization:
    access_key: str
    scope_date: str
    region: str
    signed_headers: str
    signature: str


def parse_bearer(header: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (boto3 with AWS_BEARER_TOKEN_BEDROCK), else None."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def verify_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_secret: Callable[[str], str | None],
    *,
    now: datetime,
    max_skew: timedelta = MAX_SKEW,
) -> str:
    """Check the request's SigV4 signature and return its access key id; raise `SignatureError` otherwise.

    `lookup_secret` maps an access key id to its secret key, or None when the key is unknown. `now` must be aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(UTC)")
    lowered = _lower_headers(headers)
    auth = _parse_authorization(lowered.get("authorization"), lowered)
    timestamp, when = _request_time(lowered)

    secret = lookup_secret(auth.access_key)
    if secret is None:
        raise SignatureError("UnrecognizedClientException", "The security token included in the request is invalid.")
    _check_skew(timestamp, when, now, max_skew)  # before the signature: a stale date fails as "expired", as on AWS
    if auth.scope_date != timestamp[:8]:
        raise SignatureError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.scope_date}' != '{timestamp[:8]}', from '{timestamp}'.",
        )

    payload_hash = hashlib.sha256(body).hexdigest()
    sent_hash = lowered.get("x-amz-content-sha256")
    if sent_hash is not None and sent_hash != payload_hash:
        raise SignatureError(
            "InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed."
        )

    canonical_request = "\n".join([
        method.upper(),
        quote(_remove_dot_segments(raw_path), safe="/~"),  # double-encoding: quote() re-escapes the '%' of '%3A'
        _canonical_query(raw_query),
        _canonical_headers(auth.signed_headers, lowered) + "\n",
        auth.signed_headers,
        payload_hash,
    ])
    scope = f"{auth.scope_date}/{auth.region}/{SERVICE}/aws4_request"
    string_to_sign = "\n".join([
        ALGORITHM, timestamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()
    ])
    key = f"AWS4{secret}".encode()
    for part in (auth.scope_date, auth.region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    # Bytes, not str: compare_digest refuses non-ASCII str, and the signature is attacker-controlled.
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureError("InvalidSignatureException", _MISMATCH)
    return auth.access_key


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    # Signing trims each value ("Trimall": strip, inner runs of whitespace become one space), then joins the values
    # of a repeated header with "," (botocore canonical_headers). Done once here for every header.
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), []).append(" ".join(value.split()))
    return {name: ",".join(values) for name, values in lowered.items()}


def _parse_authorization(value: str | None, headers: Mapping[str, str]) -> _Authorization:
    if not value:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(
            "IncompleteSignatureException",
            f"Unsupported AWS 'algorithm': '{algorithm}'; sign requests with {ALGORITHM} (SigV4). "
            f"Authorization={value}",
        )
    params = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    # Report every missing piece at once, in AWS's words.
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if "x-amz-date" not in headers and "date" not in headers:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if problems:
        raise SignatureError("IncompleteSignatureException", " ".join(problems) + f" Authorization={value}")

    credential = params["Credential"].split("/")
    if len(credential) != 5 or not all(credential) or credential[4] != "aws4_request":
        raise SignatureError(
            "IncompleteSignatureException",
            f"Credential should be '<access key id>/<yyyymmdd>/<region>/{SERVICE}/aws4_request', "
            f"got '{params['Credential']}'.",
        )
    access_key, scope_date, region, service, _ = credential
    if service != SERVICE:
        # AWS's wording; every Bedrock client signs as "bedrock", whatever its endpoint prefix.
        message = f"Credential should be scoped to correct service: '{SERVICE}'."
        raise SignatureError("InvalidSignatureException", message)
    if "host" not in params["SignedHeaders"].split(";"):
        message = "'Host' must be a 'SignedHeader' in the AWS Authorization."
        raise SignatureError("IncompleteSignatureException", message)
    return _Authorization(access_key, scope_date, region, params["SignedHeaders"], params["Signature"])


def _request_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """The signing timestamp (`yyyymmddThhmmssZ`) and its datetime, from X-Amz-Date, else Date (RFC 7231)."""
    if "x-amz-date" in headers:
        stamp = headers["x-amz-date"]
        if _AMZ_DATE_RE.fullmatch(stamp):
            try:
                return stamp, datetime.strptime(stamp, _AMZ_DATE).replace(tzinfo=UTC)
            except ValueError:
                pass  # digits in the right places but no such date (month 13): reported below
        raise SignatureError(
            "IncompleteSignatureException",
            f"Date must be in ISO-8601 'basic format'. Got '{stamp}'. Expected e.g. '20240102T030405Z'.",
        )
    try:
        when = parsedate_to_datetime(headers["date"])
    except (TypeError, ValueError):
        raise SignatureError(
            "IncompleteSignatureException",
            f"Date header must be an RFC 7231 date such as 'Tue, 02 Jan 2024 03:04:05 GMT', got '{headers['date']}'.",
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)  # "-0000" parses as naive UTC
    return when.strftime(_AMZ_DATE), when


def _check_skew(timestamp: str, when: datetime, now: datetime, max_skew: timedelta) -> None:
    # AWS's messages, word for word; both are InvalidSignatureException.
    minutes = f"{max_skew.total_seconds() / 60:g} min."
    if when < now - max_skew:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: {timestamp} is now earlier than {(now - max_skew).strftime(_AMZ_DATE)} "
            f"({now.strftime(_AMZ_DATE)} - {minutes})",
        )
    if when > now + max_skew:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature not yet current: {timestamp} is still later than {(now + max_skew).strftime(_AMZ_DATE)} "
            f"({now.strftime(_AMZ_DATE)} + {minutes})",
        )


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, plus collapsing repeated slashes, as botocore.utils.normalize_url_path does before signing."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and segments else ""  # "/knowledgebases/" keeps its slash
    return lead + "/".join(segments) + trail


def _canonical_query(raw_query: str) -> str:
    # Decode, then encode the one canonical way. botocore's client already sends that form, so this is the identity
    # for boto3; it also accepts clients that send '+' for spaces (urlencode) or lower-case escapes.
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        key, _, value = part.partition("=")
        pairs.append((_reencode(key), _reencode(value)))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _reencode(text: str) -> str:
    return quote(unquote_to_bytes(text.replace("+", " ")), safe="-_.~")


def _canonical_headers(signed_headers: str, headers: Mapping[str, str]) -> str:
    lines = []
    for name in signed_headers.split(";"):
        if name not in headers:
            raise SignatureError("InvalidSignatureException", f"{_MISMATCH} (Signed header '{name}' is missing.)")
        lines.append(f"{name}:{headers[name]}")  # already trimmed by _lower_headers
    return "\n".join(lines)


__all__ = ["ALGORITHM", "SERVICE", "MAX_SKEW", "SignatureError", "parse_bearer", "verify_request"]
