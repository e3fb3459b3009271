"""The `bedrock` control plane through real boto3 clients against a real `tuneforge serve`."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker
from tuneforge.catalog.builtin import DEFAULT_MODEL_ID

ROLE = "arn:aws:iam::123456789012:role/tuneforge-test"


pytestmark = pytest.mark.server(aliases={"meta.llama2-13b-v1:0:4k": "tiny"})


@pytest.fixture(scope="module")
def bedrock(server):
    c = server.client("bedrock")
    c.shapes = ShapeChecker(c)
    yield c
    assert c.shapes.problems == [], c.shapes.problems


def code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_foundation_models(bedrock):
    ids = [m["modelId"] for m in bedrock.list_foundation_models()["modelSummaries"]]
    assert DEFAULT_MODEL_ID in ids and "tiny" in ids and "meta.llama2-13b-v1:0:4k" in ids
    ft = bedrock.list_foundation_models(byCustomizationType="FINE_TUNING", byProvider="meta")["modelSummaries"]
    assert [m["modelId"] for m in ft] == ["meta.llama2-13b-v1:0:4k"]
    embedding = bedrock.list_foundation_models(byOutputModality="EMBEDDING")["modelSummaries"]
    assert [m["modelId"] for m in embedding] == ["sentence-transformers.all-minilm-l6-v2"]
    detail = bedrock.get_foundation_model(modelIdentifier=DEFAULT_MODEL_ID)["modelDetails"]
    assert detail["customizationsSupported"] == ["FINE_TUNING", "CONTINUED_PRE_TRAINING"]
    by_arn = bedrock.get_foundation_model(modelIdentifier=detail["modelArn"])["modelDetails"]  # percent-encoded in the path
    assert by_arn == detail
    with pytest.raises(ClientError) as err:
        bedrock.get_foundation_model(modelIdentifier="meta.llama3-70b-v1")
    assert code(err.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as err:
        bedrock.list_foundation_models(byCustomizationType="NOT_A_TYPE")
    assert code(err.value) == ("ValidationException", 400) and "byCustomizationType" in str(err.value)


def job_args(tmp_path, name, **overrides):
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Room {i}. Summary: ", "completion": f"Guest in room {i}."}) + "\n" for i in range(8)))
    args = dict(
        jobName=name, customModelName=f"{name}-model", roleArn=ROLE, baseModelIdentifier="tiny",
        customizationType="FINE_TUNING", trainingDataConfig={"s3Uri": str(data)},
        outputDataConfig={"s3Uri": f"file://{tmp_path}/out/"},
        hyperParameters={"epochCount": "1", "batchSize": "4", "learningRate": "0.0001", "maxSequenceLength": "64"},
    )
    args.update(overrides)
    return args


def wait_for(bedrock, arn, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = bedrock.get_model_customization_job(jobIdentifier=arn)
        if job["status"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job still {job['status']}")


def test_customization_job_lifecycle(bedrock, tmp_path):
    args = job_args(tmp_path, "api-job", clientRequestToken="token-0001",
                    jobTags=[{"key": "team", "value": "search"}], customModelTags=[{"key": "stage", "value": "dev"}])
    arn = bedrock.create_model_customization_job(**args)["jobArn"]
    assert bedrock.create_model_customization_job(**args)["jobArn"] == arn  # a retry with the same token
    with pytest.raises(ClientError) as err:
        bedrock.create_model_customization_job(**{**args, "clientRequestToken": "token-0002"})
    assert code(err.value) == ("ConflictException", 400)

    job = wait_for(bedrock, arn)
    assert job["status"] == "Completed", job.get("failureMessage")
    assert job["hyperParameters"]["epochCount"] == "1" and job["validationDataConfig"] == {"validators": []}
    assert job["trainingMetrics"]["trainingLoss"] > 0 and job["outputModelArn"].startswith("arn:aws:bedrock:us-east-1:")
    assert bedrock.get_model_customization_job(jobIdentifier="api-job")["jobArn"] == arn

    model = bedrock.get_custom_model(modelIdentifier=job["outputModelArn"])
    assert model["modelName"] == "api-job-model" and model["modelStatus"] == "Active" and model["jobArn"] == arn
    summaries = bedrock.list_custom_models()["modelSummaries"]
    assert [m["modelName"] for m in summaries] == ["api-job-model"] and summaries[0]["baseModelName"] == "tiny"

    with pytest.raises(ClientError) as err:
        bedrock.stop_model_customization_job(jobIdentifier=arn)
    assert code(err.value) == ("ConflictException", 400)

    # tags given at creation, then changed with TagResource / UntagResource
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == [{"key": "team", "value": "search"}]
    model_arn = job["outputModelArn"]
    assert bedrock.list_tags_for_resource(resourceARN=model_arn)["tags"] == [{"key": "stage", "value": "dev"}]
    bedrock.tag_resource(resourceARN=model_arn, tags=[{"key": "stage", "value": "prod"}, {"key": "owner", "value": "ml@x.org"}])
    bedrock.untag_resource(resourceARN=arn, tagKeys=["team", "absent"])
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == []
    assert bedrock.list_tags_for_resource(resourceARN=model_arn)["tags"] == [
        {"key": "owner", "value": "ml@x.org"}, {"key": "stage", "value": "prod"}]
    with pytest.raises(ClientError) as err:
        bedrock.tag_resource(resourceARN=model_arn, tags=[{"key": "bad<key>", "value": "v"}])
    assert code(err.value) == ("ValidationException", 400) and "tags[0].key" in str(err.value)
    with pytest.raises(ClientError) as err:
        bedrock.tag_resource(resourceARN=model_arn, tags=[{"key": f"k{i}", "value": "v"} for i in range(199)])
    assert code(err.value) == ("TooManyTagsException", 400)

    bedrock.delete_custom_model(modelIdentifier="api-job-model")
    with pytest.raises(ClientError) as err:
        bedrock.get_custom_model(modelIdentifier="api-job-model")
    assert code(err.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as err:
        bedrock.list_tags_for_resource(resourceARN=model_arn)
    assert code(err.value) == ("ResourceNotFoundException", 404)


def test_listing_pages_and_filters(bedrock, tmp_path):
    arns = [bedrock.create_model_customization_job(**job_args(tmp_path, f"page-{i}"))["jobArn"] for i in range(3)]
    for arn in arns:
        bedrock.stop_model_customization_job(jobIdentifier=arn)
    first = bedrock.list_model_customization_jobs(nameContains="page-", maxResults=2, sortOrder="Ascending")
    assert len(first["modelCustomizationJobSummaries"]) == 2 and "nextToken" in first
    rest = bedrock.list_model_customization_jobs(nameContains="page-", maxResults=2, sortOrder="Ascending", nextToken=first["nextToken"])
    names = [j["jobName"] for j in first["modelCustomizationJobSummaries"] + rest["modelCustomizationJobSummaries"]]
    assert names == ["page-0", "page-1", "page-2"] and "nextToken" not in rest
    paginated = bedrock.get_paginator("list_model_customization_jobs").paginate(nameContains="page-", PaginationConfig={"PageSize": 1})
    assert sum(len(p["modelCustomizationJobSummaries"]) for p in paginated) == 3
    with pytest.raises(ClientError) as err:
        bedrock.list_model_customization_jobs(maxResults=5000)
    assert code(err.value) == ("ValidationException", 400)
    with pytest.raises(ClientError) as err:
        bedrock.list_model_customization_jobs(nextToken="forged")
    assert code(err.value) == ("ValidationException", 400)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"hyperParameters": {"epochCount": "eleven"}}, "epochCount"),
        ({"hyperParameters": {"batchSize": "2"}, "baseModelIdentifier": "meta.llama2-13b-v1:0:4k"}, "batchSize"),
        ({"jobName": "bad name!"}, "jobName"),
        ({"roleArn": "arn:aws:iam::123:user/x"}, "roleArn"),
        ({"customizationType": "DISTILLATION"}, "customizationType"),
        ({"baseModelIdentifier": "meta.llama3-70b-v1"}, "meta.llama3-70b-v1"),
    ],
)
def test_bad_job_requests_are_rejected(bedrock, tmp_path, overrides, needle):
    with pytest.raises(ClientError) as err:
        bedrock.create_model_customization_job(**job_args(tmp_path, "rejected", **overrides))
    assert code(err.value)[0] in ("ValidationException", "ResourceNotFoundException")
    assert needle in err.value.response["Error"]["Message"]


def test_unimplemented_operations_say_so(server):
    bedrock = server.client("bedrock")
    with pytest.raises(ClientError) as err:
        bedrock.list_guardrails()
    assert code(err.value) == ("InternalFailure", 501) and "not implemented" in str(err.value)
