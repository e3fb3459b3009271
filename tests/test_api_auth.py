"""Authentication, audit, metrics and bad-input hardening of `tuneforge serve`, through real boto3 clients.

Keys come from the real CLI (`tuneforge keys create`); requests that boto3 would never send (malformed JSON,
wrong types) are signed with botocore's own signer and sent raw.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.message import Message

import botocore
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.api_server import Server, create_key, tuneforge
from tests.test_api_bedrock import job_args

MAX_BYTES = 65_536


pytestmark = pytest.mark.server(env={"TUNEFORGE_MAX_REQUEST_BYTES": str(MAX_BYTES)})


def code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def fails(call, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return code(err.value)


def send(server: Server, method: str, path: str, body: bytes = b"", key: tuple[str, str] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Message, dict]:
    """A raw request, SigV4-signed by botocore (as boto3 would) when `key` is given."""
    request = AWSRequest(method=method, url=server.url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    if key is not None:
        SigV4Auth(Credentials(*key), "bedrock", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=body or None, method=method,
                                 headers={k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()})
    try:
        with urllib.request.urlopen(raw, timeout=30) as reply:
            return reply.status, reply.headers, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as reply:
        return reply.code, reply.headers, json.loads(reply.read() or b"{}")


# ---- authentication ---------------------------------------------------------------------------------
def test_signed_requests_pass_and_every_failure_has_awss_code(server):
    assert server.client("bedrock").list_foundation_models()["modelSummaries"]
    key_id, secret = server.key
    assert key_id.startswith("AKIA") and len(key_id) == 20 and len(secret) == 40

    unsigned = server.client("bedrock", key=("x", "y"), signature_version=botocore.UNSIGNED)
    assert fails(unsigned.list_foundation_models) == ("MissingAuthenticationTokenException", 403)
    assert fails(unsigned.get_evaluation_job, jobIdentifier="x") == ("MissingAuthenticationTokenException", 403)  # not implemented either
    wrong_secret = server.client("bedrock", key=(key_id, "W" * 40))
    assert fails(wrong_secret.list_foundation_models) == ("InvalidSignatureException", 403)
    unknown = server.client("bedrock-runtime", key=("AKIAUNKNOWNUNKNOWN00", secret))
    assert fails(unknown.converse, modelId="tiny", messages=[{"role": "user", "content": [{"text": "hi"}]}]) == ("UnrecognizedClientException", 403)
    # a body changed after signing: the server hashes the body itself (boto3 sends no X-Amz-Content-SHA256)
    request = AWSRequest(method="POST", url=server.url + "/listTagsForResource", data=b'{"resourceARN":"a"}', headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(*server.key), "bedrock", "us-east-1").add_auth(request)
    tampered = urllib.request.Request(server.url + "/listTagsForResource", data=b'{"resourceARN":"b"}', method="POST",
                                      headers={k: v.decode() if isinstance(v, bytes) else v for k, v in request.prepare().headers.items()})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered, timeout=30)
    assert (err.value.code, err.value.headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_skewed_clock_is_refused(server, monkeypatch, skew):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime.now(UTC).replace(tzinfo=None) + skew)
    with pytest.raises(ClientError) as err:
        server.client("bedrock").list_foundation_models()
    assert code(err.value) == ("InvalidSignatureException", 403)
    assert ("expired" if skew < timedelta(0) else "not yet current") in err.value.response["Error"]["Message"]


def test_a_small_skew_is_accepted(server, monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=4))
    assert server.client("bedrock").list_foundation_models()["modelSummaries"]


def test_revoked_key_and_listing_never_shows_secrets(server):
    key = create_key(server.home, "--name", "short-lived")
    bedrock = server.client("bedrock", key=key)
    assert bedrock.list_foundation_models()["modelSummaries"]
    tuneforge(server.home, "keys", "revoke", key[0])
    assert fails(bedrock.list_foundation_models) == ("UnrecognizedClientException", 403)
    listed = tuneforge(server.home, "keys", "list", "--json").stdout
    assert key[1] not in listed and server.key[1] not in listed
    entry = next(k for k in json.loads(listed)["accessKeys"] if k["accessKeyId"] == key[0])
    assert entry["status"] == "Revoked" and entry["name"] == "short-lived" and entry["readOnly"] is False
    secrets_db = (server.home / "tuneforge.db").read_bytes()
    assert key[1].encode() not in secrets_db and server.key[1].encode() not in secrets_db  # encrypted at rest
    with pytest.raises(AssertionError, match="no access key"):
        tuneforge(server.home, "keys", "revoke", "AKIANOSUCHKEY0000000")


def test_read_only_key_reads_but_cannot_mutate(server, tmp_path):
    viewer = create_key(server.home, "--read-only", "--name", "viewer")
    bedrock = server.client("bedrock", key=viewer)
    listing = server.client("bedrock").list_model_customization_jobs()["modelCustomizationJobSummaries"]
    assert bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"] == listing  # what a full key sees
    assert bedrock.get_foundation_model(modelIdentifier="tiny")["modelDetails"]["modelId"] == "tiny"
    with pytest.raises(bedrock.exceptions.AccessDeniedException) as err:
        bedrock.create_model_customization_job(**job_args(tmp_path, "denied-job"))
    assert "read-only" in str(err.value)
    assert fails(bedrock.stop_model_customization_job, jobIdentifier="any") == ("AccessDeniedException", 403)
    assert fails(bedrock.tag_resource, resourceARN="arn:aws:bedrock:us-east-1:000000000000:custom-model/tiny/abcdefghijkl",
                 tags=[{"key": "a", "value": "b"}]) == ("AccessDeniedException", 403)
    events = json.loads(tuneforge(server.home, "audit", "--json", "--limit", "3").stdout)["events"]
    assert [(e["operation"], e["accessKeyId"], e["statusCode"]) for e in events] == [
        ("TagResource", viewer[0], 403), ("StopModelCustomizationJob", viewer[0], 403), ("CreateModelCustomizationJob", viewer[0], 403)]


def test_bearer_tokens_work_on_the_bedrock_services(server):
    key_id, secret = server.key
    for token in (secret, f"{key_id}:{secret}"):
        status, _, body = send(server, "GET", "/foundation-models", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and body["modelSummaries"]
    status, headers, _ = send(server, "GET", "/foundation-models", headers={"Authorization": f"Bearer {key_id}:wrong"})
    assert (status, headers["x-amzn-ErrorType"]) == (403, "UnrecognizedClientException")


# ---- audit ------------------------------------------------------------------------------------------
def test_mutating_calls_are_audited(server, tmp_path):
    bedrock = server.client("bedrock")
    arn = bedrock.create_model_customization_job(**job_args(tmp_path, "audited-job"))["jobArn"]
    bedrock.stop_model_customization_job(jobIdentifier=arn)
    assert fails(bedrock.stop_model_customization_job, jobIdentifier="no-such-job") == ("ResourceNotFoundException", 404)
    bedrock.list_model_customization_jobs()  # reads are not audited

    events = json.loads(tuneforge(server.home, "audit", "--json", "--limit", "3").stdout)["events"]
    assert [(e["operation"], e["statusCode"], e["errorCode"]) for e in events] == [
        ("StopModelCustomizationJob", 404, "ResourceNotFoundException"),
        ("StopModelCustomizationJob", 200, None),
        ("CreateModelCustomizationJob", 201, None),
    ]
    assert events[2]["resource"] == arn and events[1]["resource"] == arn and events[0]["resource"] == "no-such-job"
    assert {e["accessKeyId"] for e in events} == {server.key[0]}
    assert datetime.fromisoformat(events[0]["time"]) > datetime.now(UTC) - timedelta(minutes=5)
    table = tuneforge(server.home, "audit", "--limit", "1", env={"COLUMNS": "250"}).stdout
    assert "StopModelCustomizationJob" in table and "404" in table
    everything = json.loads(tuneforge(server.home, "audit", "--json", "--limit", "10000").stdout)["events"]
    denied = [e for e in everything if e["errorCode"] == "AccessDeniedException"]
    assert denied and all(e["statusCode"] == 403 for e in denied)


# ---- metrics and health -------------------------------------------------------------------------------
def test_metrics_and_health(server):
    bedrock = server.client("bedrock")
    bedrock.list_foundation_models()
    fails(server.client("bedrock", key=(server.key[0], "W" * 40)).list_foundation_models)
    with urllib.request.urlopen(f"{server.url}/health", timeout=10) as reply:
        assert json.loads(reply.read())["status"] == "ok"
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(reply.read().decode())}
    requests = {(s.labels["operation"], s.labels["status"]): s.value for s in families["tuneforge_requests"].samples if s.name.endswith("_total")}
    assert requests[("ListFoundationModels", "200")] >= 1 and requests[("ListFoundationModels", "403")] >= 1
    latency = [s for s in families["tuneforge_request_duration_seconds"].samples
               if s.name.endswith("_count") and s.labels["operation"] == "ListFoundationModels"]
    assert latency and latency[0].value >= 2
    assert "tuneforge_customization_jobs" in families and "tuneforge_worker_queue_depth" in families and "tuneforge_tokens" in families


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"jobName": "x",', "not valid JSON"),
        (b'["a list"]', "JSON object"),
        (json.dumps({"jobName": 5, "customModelName": "m", "roleArn": "r", "baseModelIdentifier": "tiny",
                     "trainingDataConfig": {}, "outputDataConfig": {"s3Uri": "s3://b/o"}}).encode(), "jobName"),
        (json.dumps({"jobName": "j", "surprise": 1}).encode(), "surprise"),
        (b"\xff\xfe not utf-8", "not valid JSON"),
    ],
)
def test_malformed_bodies_are_validation_errors(server, body, needle):
    status, headers, reply = send(server, "POST", "/model-customization-jobs", body, key=server.key)
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException") and needle in reply["message"]


def test_oversized_bodies_are_refused_before_reading(server):
    runtime = server.client("bedrock-runtime")
    with pytest.raises(ClientError) as err:
        runtime.invoke_model(modelId="tiny", body=json.dumps({"prompt": "x" * (MAX_BYTES + 1)}))
    assert code(err.value) == ("ValidationException", 413) and "TUNEFORGE_MAX_REQUEST_BYTES" in str(err.value)


@pytest.mark.parametrize("name", ["bad name!", "../../etc/passwd", "naïve-job", "tab\there", "x" * 64, "emoji-🙂"])
def test_odd_characters_in_names(server, tmp_path, name):
    bedrock = server.client("bedrock")
    assert fails(bedrock.create_model_customization_job, **job_args(tmp_path, "odd", jobName=name)) == ("ValidationException", 400)
    assert fails(bedrock.create_model_customization_job, **job_args(tmp_path, "odd", customModelName=name)) == ("ValidationException", 400)
    assert fails(bedrock.get_custom_model, modelIdentifier=name) == ("ResourceNotFoundException", 404)


def test_unknown_model_ids(server):
    bedrock, runtime = server.client("bedrock"), server.client("bedrock-runtime")
    assert fails(bedrock.get_foundation_model, modelIdentifier="no.such-model-v1") == ("ResourceNotFoundException", 404)
    assert fails(runtime.converse, modelId="no.such-model-v1", messages=[{"role": "user", "content": [{"text": "hi"}]}]) == ("ResourceNotFoundException", 404)
    assert fails(bedrock.list_tags_for_resource, resourceARN="arn:aws:bedrock:us-east-1:000000000000:custom-model/tiny/abcdefghijkl") == ("ResourceNotFoundException", 404)


# ---- --no-auth --------------------------------------------------------------------------------------
def test_no_auth_serves_anyone_and_audits_without_a_key(start_server):
    srv = start_server(no_auth=True)
    unsigned = srv.client("bedrock", signature_version=botocore.UNSIGNED)
    assert unsigned.list_foundation_models()["modelSummaries"]
    assert fails(unsigned.stop_model_customization_job, jobIdentifier="nothing") == ("ResourceNotFoundException", 404)
    srv.stop()  # the audit as the server left it
    events = json.loads(tuneforge(srv.home, "audit", "--json").stdout)["events"]
    assert [(e["operation"], e["accessKeyId"]) for e in events] == [("StopModelCustomizationJob", None)]


@pytest.mark.slow  # several CLI processes
def test_keys_cli_tables_and_bad_flags(tmp_path):
    home = tmp_path / "home"
    key_id, secret = create_key(home, "--read-only")
    table = tuneforge(home, "keys", "list", env={"COLUMNS": "200"}).stdout
    assert key_id in table and "read-only" in table and secret not in table
    shown = tuneforge(home, "keys", "create", env={"COLUMNS": "200"}).stdout
    assert "secretAccessKey:" in shown and "not shown again" in shown
    with pytest.raises(AssertionError, match="--name") as err:
        tuneforge(home, "keys", "create", "--name", "bad\nname")
    assert "exited 2" in str(err.value)
    with pytest.raises(AssertionError, match="--limit"):
        tuneforge(home, "audit", "--limit", "0")
