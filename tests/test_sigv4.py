"""tuneforge.api.sigv4 against botocore's own signer (the oracle; nothing is mocked).

Requests are signed by `botocore.auth.SigV4Auth` or by real boto3 clients whose HTTP transport is replaced by a
before-send handler, then checked by `verify_request` exactly as they would arrive on the wire.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

from tuneforge.api.sigv4 import SignatureError, parse_bearer, verify_request

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SECRETS = {CREDS.access_key: CREDS.secret_key}
BASE = "http://127.0.0.1:8080"
ARN_PATH = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aprovisioned-model%2Fabc/invoke"
MISMATCH = "The request signature we calculated does not match the signature you provided."


@dataclass(frozen=True)
class Wire:
    """A request as the server receives it: raw path and query, str headers (Host included), body bytes.

    `sent` is when it was signed; checks default to receiving it then, since SIGNED is built at import time and
    the rest of the suite may run for longer than the 5 minutes of allowed skew before these tests do.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    sent: datetime

    def with_header(self, name: str, value: str | None) -> Wire:
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        return replace(self, headers=headers if value is None else {**headers, name: value})


def on_wire(prepared) -> Wire:
    """What urllib3 sends for a prepared botocore request: it adds Host, which botocore signed but did not set."""
    url = urlsplit(prepared.url)
    # botocore keeps most header values as bytes
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    return Wire(prepared.method, url.path, url.query, {"Host": url.netloc, **headers}, prepared.body or b"",
                datetime.now(UTC))


def sign(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None,
         params: dict | None = None, creds: Credentials = CREDS, region: str = "us-east-1",
         service: str = "bedrock") -> Wire:
    # botocore's order: sign the AWSRequest, then prepare it (params are urlencoded into the URL at prepare time)
    request = AWSRequest(method=method, url=BASE + target, data=body, headers=headers or {}, params=params or {})
    SigV4Auth(creds, service, region).add_auth(request)
    return on_wire(request.prepare())


def verify(wire: Wire, *, now: datetime | None = None, secrets: dict[str, str] = SECRETS) -> str:
    return verify_request(wire.method, wire.path, wire.query, wire.headers, wire.body, secrets.get,
                          now=now or wire.sent)


def rejected(wire: Wire, code: str, **kwargs) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        verify(wire, **kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


JSON = {"Content-Type": "application/json", "Accept": "application/json"}
SIGNED = {
    "list-filters-unsorted": sign("GET", "/foundation-models?byProvider=Meta&byCustomizationType=FINE_TUNING"),
    "repeated-encoded-query": sign("GET", "/x?b=2&a=z&a=1&tag=k%2Fv&t=2024-01-01T00%3A00%3A00Z&empty="),
    "params-urlencoded": sign(
        "GET", "/custom-models", params={"nameContains": "my model", "creationTimeAfter": "2024-01-01T00:00:00Z"}
    ),
    "arn-path": sign("POST", ARN_PATH, b'{"prompt":"hi"}', JSON),
    "stream-no-content-type": sign(
        "POST", "/model/meta.llama2-13b-chat-v1/invoke-with-response-stream", b'{"prompt":"hi"}'
    ),
    "empty-body": sign("POST", "/model-customization-jobs/job-1/stop"),
    "trailing-slash": sign("POST", "/knowledgebases/", b'{"maxResults":5}', {"Content-Type": "application/json"}),
    "dot-segments": sign("GET", "/a//b/./c/../d"),
    "session-token": sign("GET", "/custom-models", creds=Credentials("AKIDEXAMPLE", CREDS.secret_key, "sts-token")),
    "date-header": sign("GET", "/custom-models", headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"}),
    "other-region": sign("GET", "/custom-models", region="eu-west-3"),
    "content-sha256": sign("POST", "/x", b"abc", {"X-Amz-Content-SHA256": hashlib.sha256(b"abc").hexdigest()}),
    "whitespace-header": sign("POST", "/x", b"", {"X-Custom": "  a   b  "}),
}


@pytest.mark.parametrize("wire", SIGNED.values(), ids=SIGNED.keys())
def test_botocore_signed_requests_verify(wire: Wire):
    assert verify(wire) == "AKIDEXAMPLE"


def test_fixture_requests_look_like_botocore_sends_them():
    assert SIGNED["list-filters-unsorted"].query == "byProvider=Meta&byCustomizationType=FINE_TUNING"  # not sorted
    assert SIGNED["params-urlencoded"].query.startswith("nameContains=my+model&")  # '+', but signed as %20
    assert "X-Amz-Date" not in SIGNED["date-header"].headers  # a Date header replaces X-Amz-Date
    assert "x-amz-security-token" in SIGNED["session-token"].headers["Authorization"]
    assert "Content-Type" not in SIGNED["stream-no-content-type"].headers
    assert "SignedHeaders=host;x-amz-date," in SIGNED["stream-no-content-type"].headers["Authorization"]


def test_headers_are_case_insensitive_and_may_repeat():
    wire = SIGNED["arn-path"]
    assert verify(replace(wire, headers={k.upper(): v for k, v in wire.headers.items()})) == "AKIDEXAMPLE"
    # botocore signs a repeated header as its trimmed values joined by ","; Starlette's Headers.items() repeats them
    request = AWSRequest(method="GET", url=BASE + "/x")
    request.headers.add_header("X-Multi", " one ")
    request.headers.add_header("X-Multi", "two")
    SigV4Auth(CREDS, "bedrock", "us-east-1").add_auth(request)
    signed = on_wire(request.prepare())
    assert "x-multi" in signed.headers["Authorization"]

    class RepeatedHeaders(dict):
        def items(self):
            return [*((k, v) for k, v in super().items() if k != "X-Multi"), ("x-multi", " one "), ("x-multi", "two")]

    assert verify(replace(signed, headers=RepeatedHeaders(signed.headers))) == "AKIDEXAMPLE"


# ---- tampering: each changes one thing in a correctly signed request


def tamper_query(wire: Wire) -> Wire:
    return replace(wire, query=wire.query.replace("Meta", "Amazon"))


TAMPERED = {
    "body": lambda w: replace(w, body=w.body + b" "),
    "path": lambda w: replace(w, path=w.path.replace("abc", "abd")),
    "path-decoded-by-proxy": lambda w: replace(w, path=w.path.replace("%3A", ":")),
    "method": lambda w: replace(w, method="PUT"),
    "signed-header": lambda w: w.with_header("Content-Type", "text/plain"),
    "host": lambda w: w.with_header("Host", "evil.example:8080"),
    "date-by-one-second": lambda w: w.with_header(
        "X-Amz-Date", (signed_at(w) + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
    ),
    "signature": lambda w: w.with_header(  # flip the last hex digit
        "Authorization", w.headers["Authorization"][:-1] + ("1" if w.headers["Authorization"].endswith("0") else "0")),
    "signature-non-ascii": lambda w: w.with_header("Authorization", w.headers["Authorization"][:-1] + "é"),
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_tampered_request_fails_signature(tamper):
    error = rejected(tamper(SIGNED["arn-path"]), "InvalidSignatureException")
    assert error.message.startswith(MISMATCH) and error.status == 403


@pytest.mark.parametrize("query", ["byProvider=Amazon&byCustomizationType=FINE_TUNING", "byProvider=Meta",
                                  "byProvider=Meta&byCustomizationType=FINE_TUNING&x=1", ""])
def test_tampered_query_fails_signature(query: str):
    rejected(replace(SIGNED["list-filters-unsorted"], query=query), "InvalidSignatureException")


def test_reordered_query_still_verifies():
    wire = SIGNED["list-filters-unsorted"]
    assert verify(replace(wire, query="byCustomizationType=FINE_TUNING&byProvider=Meta")) == "AKIDEXAMPLE"


def test_unsigned_header_may_change():
    assert verify(SIGNED["arn-path"].with_header("User-Agent", "something else")) == "AKIDEXAMPLE"


def test_wrong_secret_and_unknown_key():
    error = rejected(SIGNED["arn-path"], "InvalidSignatureException", secrets={"AKIDEXAMPLE": "not-the-secret"})
    assert error.message.startswith(MISMATCH)
    error = rejected(SIGNED["arn-path"], "UnrecognizedClientException", secrets={})
    assert error.message == "The security token included in the request is invalid." and error.status == 403


# ---- clock skew: AWS allows 5 minutes either way


def signed_at(wire: Wire) -> datetime:
    if "X-Amz-Date" in wire.headers:
        return datetime.strptime(wire.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return parsedate_to_datetime(wire.headers["Date"]).replace(tzinfo=UTC)


@pytest.mark.parametrize("offset", [timedelta(minutes=-5), timedelta(minutes=5), timedelta(0)])
def test_skew_within_five_minutes_is_accepted(offset: timedelta):
    wire = SIGNED["arn-path"]
    assert verify(wire, now=signed_at(wire) + offset) == "AKIDEXAMPLE"


def test_skew_beyond_five_minutes_is_rejected_both_ways():
    wire = SIGNED["arn-path"]
    error = rejected(wire, "InvalidSignatureException", now=signed_at(wire) + timedelta(minutes=5, seconds=1))
    assert error.message.startswith(f"Signature expired: {wire.headers['X-Amz-Date']} is now earlier than ")
    assert error.message.endswith(" - 5 min.)")
    error = rejected(wire, "InvalidSignatureException", now=signed_at(wire) - timedelta(minutes=6))
    assert error.message.startswith(f"Signature not yet current: {wire.headers['X-Amz-Date']} is still later than ")


def test_date_header_rewritten_beyond_skew_reports_expiry_not_mismatch():
    wire = SIGNED["arn-path"]
    old = (signed_at(wire) - timedelta(minutes=10)).strftime("%Y%m%dT%H%M%SZ")
    error = rejected(wire.with_header("X-Amz-Date", old), "InvalidSignatureException", now=signed_at(wire))
    assert error.message.startswith("Signature expired:")


def test_date_header_form_is_checked_for_skew():
    wire = SIGNED["date-header"]
    assert not wire.headers["Date"].startswith("Mon, 01 Jan 2024")  # botocore rewrites Date to the signing time
    assert verify(wire, now=signed_at(wire) + timedelta(minutes=4)) == "AKIDEXAMPLE"
    error = rejected(wire, "InvalidSignatureException", now=signed_at(wire) + timedelta(minutes=6))
    assert error.message.startswith("Signature expired:")


def test_now_must_be_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(SIGNED["arn-path"], now=datetime.now())


# ---- malformed or missing authentication


def test_missing_authorization():
    error = rejected(SIGNED["arn-path"].with_header("Authorization", None), "MissingAuthenticationTokenException")
    assert error.message == "Missing Authentication Token" and error.status == 403


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("garbage", "Unsupported AWS 'algorithm': 'garbage'"),
        ("Bearer abc", "Unsupported AWS 'algorithm': 'Bearer'"),
        ("AWS4-HMAC-SHA256", "Authorization header requires 'Credential' parameter. Authorization header requires "
                             "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host",
         "Authorization header requires 'Signature' parameter."),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=ab",
         "Credential should be '<access key id>/<yyyymmdd>/<region>/bedrock/aws4_request'"),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4, SignedHeaders=host, Signature=ab",
         "Credential should be"),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=x-amz-date, "
         "Signature=ab", "'Host' must be a 'SignedHeader'"),
    ],
    ids=["garbage", "bearer", "no-params", "no-signature", "short-credential", "bad-terminator", "host-unsigned"],
)
def test_malformed_authorization_is_incomplete(authorization: str, expected: str):
    error = rejected(SIGNED["arn-path"].with_header("Authorization", authorization), "IncompleteSignatureException")
    assert expected in error.message and error.status == 400


def test_no_date_header_and_malformed_dates_are_incomplete():
    wire = SIGNED["arn-path"]
    error = rejected(wire.with_header("X-Amz-Date", None), "IncompleteSignatureException")
    assert "either a 'X-Amz-Date' or a 'Date' header" in error.message
    for bad in ("2024-01-01T00:00:00Z", "20241301T000000Z", ""):
        error = rejected(wire.with_header("X-Amz-Date", bad), "IncompleteSignatureException")
        assert "ISO-8601 'basic format'" in error.message
    rejected(SIGNED["date-header"].with_header("Date", "yesterday"), "IncompleteSignatureException")


def test_scope_must_be_bedrock_and_match_the_date():
    # a common client bug: signing with the endpoint prefix ("bedrock-runtime") instead of the signing name
    error = rejected(sign("POST", "/model/m/invoke", service="bedrock-runtime"), "InvalidSignatureException")
    assert error.message == "Credential should be scoped to correct service: 'bedrock'."
    wire = SIGNED["arn-path"]
    day = wire.headers["X-Amz-Date"][:8]
    error = rejected(wire.with_header("Authorization", wire.headers["Authorization"].replace(f"/{day}/", "/20000101/")),
                     "InvalidSignatureException")
    assert error.message.startswith("Date in Credential scope does not match")


def test_content_sha256_header_must_match_the_body():
    wire = SIGNED["content-sha256"]
    for value in ("UNSIGNED-PAYLOAD", hashlib.sha256(b"abd").hexdigest()):
        error = rejected(wire.with_header("X-Amz-Content-SHA256", value), "InvalidSignatureException")
        assert "x-amz-content-sha256" in error.message
    rejected(replace(wire, body=b"abd"), "InvalidSignatureException")


def test_signed_header_missing_from_request():
    error = rejected(SIGNED["arn-path"].with_header("Accept", None), "InvalidSignatureException")
    assert "'accept' is missing" in error.message


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def", "abc.def"), ("bearer  tok ", "tok"), ("Bearer", None), ("Bearer   ", None),
     ("AWS4-HMAC-SHA256 Credential=x", None), ("", None), (None, None)],
)
def test_parse_bearer(header: str | None, token: str | None):
    assert parse_bearer(header) == token


# ---- end to end: real boto3 clients build the requests; before-send captures them instead of sending


@pytest.fixture
def captured():
    requests: list[Wire] = []

    def client(service: str, region: str = "us-east-1", token: str | None = None):
        made = botocore.session.get_session().create_client(
            service, region_name=region, endpoint_url="http://127.0.0.1:9",
            aws_access_key_id=CREDS.access_key, aws_secret_access_key=CREDS.secret_key, aws_session_token=token,
        )

        def send(request, **_):
            requests.append(on_wire(request))
            return AWSResponse(request.url, 200, {}, FakeBody())

        made.meta.events.register("before-send.*", send)
        return made

    return client, requests


class FakeBody:
    def stream(self, **_: object):
        yield b"{}"

    def close(self) -> None:
        pass


def test_boto3_requests_verify(captured):
    client, requests = captured
    bedrock = client("bedrock", region="eu-west-3", token="session-token")
    runtime = client("bedrock-runtime")
    agent = client("bedrock-agent")
    bedrock.list_foundation_models(byProvider="Meta", byCustomizationType="FINE_TUNING", byInferenceType="ON_DEMAND")
    bedrock.create_model_customization_job(
        jobName="job-1", customModelName="my-model", roleArn="arn:aws:iam::123456789012:role/r",
        baseModelIdentifier="meta.llama2-13b-v1:0:4k", customizationType="FINE_TUNING",
        trainingDataConfig={"s3Uri": "s3://bucket/train.jsonl"}, outputDataConfig={"s3Uri": "s3://bucket/out/"},
        hyperParameters={"epochCount": "2", "learningRate": "0.00005"},
    )
    bedrock.list_custom_models(nameContains="my model", creationTimeAfter=datetime(2024, 1, 1, tzinfo=UTC))
    runtime.invoke_model(
        modelId="arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc", body=b'{"prompt":"hi"}',
        contentType="application/json", accept="application/json",
    )
    runtime.invoke_model_with_response_stream(modelId="meta.llama2-13b-chat-v1", body=b'{"prompt":"hi"}')
    bedrock.stop_model_customization_job(jobIdentifier="job-1")
    agent.list_knowledge_bases(maxResults=5)

    paths = [(r.method, r.path) for r in requests]
    assert paths == [
        ("GET", "/foundation-models"), ("POST", "/model-customization-jobs"), ("GET", "/custom-models"),
        ("POST", ARN_PATH), ("POST", "/model/meta.llama2-13b-chat-v1/invoke-with-response-stream"),
        ("POST", "/model-customization-jobs/job-1/stop"), ("POST", "/knowledgebases/"),
    ]
    assert requests[0].query == "byProvider=Meta&byCustomizationType=FINE_TUNING&byInferenceType=ON_DEMAND"
    assert "/eu-west-3/bedrock/aws4_request" in requests[0].headers["Authorization"]
    assert "X-Amz-Content-SHA256" not in requests[1].headers  # the server must hash the body itself
    assert requests[2].query == "nameContains=my%20model&creationTimeAfter=2024-01-01T00%3A00%3A00Z"  # %20, not +
    for request in requests:
        assert verify(request) == "AKIDEXAMPLE", request.path
    # and the verifier is not a rubber stamp on these either
    rejected(replace(requests[3], body=b'{"prompt":"ho"}'), "InvalidSignatureException")
    rejected(replace(requests[0], query=requests[0].query.replace("Meta", "Amazon")), "InvalidSignatureException")
