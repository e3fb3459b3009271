"""Hypothesis-driven boto3 calls on the AWS routes of a real server (signed with an issued key).

Property: every reply is a success or a ClientError with a 4xx status whose code the operation's botocore model
declares (or AWS's generic ValidationException), never a 5xx; and the state stays intact: nothing is created by
rejected calls, and a known-good request still works afterwards. Runs are derandomized (the same examples every
run) and small, to keep CI fast.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


FUZZ = settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats(allow_nan=False) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4), max_leaves=12,
)
BODY_KEYS = st.sampled_from(["prompt", "max_gen_len", "temperature", "top_p", "inputText", "textGenerationConfig", "x"])


@pytest.fixture(scope="module")
def clients(server):
    return {name: server.client(name, retries={"max_attempts": 1}) for name in ("bedrock", "bedrock-runtime", "bedrock-agent")}


def declared(client, operation: str) -> set[str]:
    model = client.meta.service_model.operation_model(operation)
    return {shape.name for shape in model.error_shapes} | {"ValidationException"}


def call(client, method: str, **params):
    """The reply, or the error's (code, status); a client-side parameter error counts as rejected input."""
    operation = client.meta.method_to_api_mapping[method]
    try:
        return getattr(client, method)(**params)
    except ParamValidationError:
        return None
    except ClientError as exc:
        code, status = exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
        assert 400 <= status < 500, (method, params, code, status, exc.response["Error"].get("Message"))
        assert code in declared(client, operation), (method, params, code)
        return None


@FUZZ
@given(name=ODD_TEXT, units=st.integers(min_value=-5, max_value=10**6), model=ODD_TEXT)
def test_provisioned_throughput_inputs(clients, name, units, model):
    bedrock = clients["bedrock"]
    call(bedrock, "create_provisioned_model_throughput", provisionedModelName=name, modelId=model or "x", modelUnits=units)
    call(bedrock, "get_provisioned_model_throughput", provisionedModelId=name or "x")


@FUZZ
@given(job_name=ODD_TEXT, hyperparameters=st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=4), uri=ODD_TEXT)
def test_customization_job_inputs(clients, job_name, hyperparameters, uri):
    call(clients["bedrock"], "create_model_customization_job", jobName=job_name or "j", customModelName="fuzz-model",
         roleArn="arn:aws:iam::123456789012:role/fuzz", baseModelIdentifier="tiny", trainingDataConfig={"s3Uri": uri or "x"},
         outputDataConfig={"s3Uri": "/nonexistent-dir/out"}, hyperParameters=hyperparameters)


@FUZZ
@given(identifier=ODD_TEXT, provider=ODD_TEXT)
def test_model_lookups(clients, identifier, provider):
    call(clients["bedrock"], "get_foundation_model", modelIdentifier=identifier or "x")
    call(clients["bedrock"], "get_custom_model", modelIdentifier=identifier or "x")
    call(clients["bedrock"], "list_foundation_models", byProvider=provider)


@FUZZ
@given(body=st.dictionaries(BODY_KEYS, JSON_VALUES, max_size=5) | JSON_VALUES, raw=st.binary(max_size=64))
def test_invoke_model_bodies(clients, body, raw):
    runtime = clients["bedrock-runtime"]
    call(runtime, "invoke_model", modelId="tiny", body=json.dumps(body))
    call(runtime, "invoke_model", modelId="tiny", body=raw)


@FUZZ
@given(text=ODD_TEXT, role=st.sampled_from(["user", "assistant", "system", "bot"]), max_tokens=st.integers(-3, 10**9))
def test_converse_messages(clients, text, role, max_tokens):
    call(clients["bedrock-runtime"], "converse", modelId="tiny", messages=[{"role": role, "content": [{"text": text}]}],
         inferenceConfig={"maxTokens": max_tokens})


@FUZZ
@given(name=ODD_TEXT, model=ODD_TEXT)
def test_knowledge_base_inputs(clients, name, model):
    call(clients["bedrock-agent"], "create_knowledge_base", name=name or "k", roleArn="arn:aws:iam::123456789012:role/fuzz",
         knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": model or "x"}})
    call(clients["bedrock-agent"], "get_knowledge_base", knowledgeBaseId=name or "k")


def test_state_is_intact_after_fuzzing(clients):
    """Runs after the fuzz tests (file order): rejected calls created nothing, and good requests still work."""
    bedrock = clients["bedrock"]
    assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
    assert bedrock.list_custom_models()["modelSummaries"] == []
    knowledge_bases = clients["bedrock-agent"].list_knowledge_bases()["knowledgeBaseSummaries"]
    assert all(kb["status"] in ("ACTIVE", "CREATING") for kb in knowledge_bases)  # any a fuzzed valid name made is usable
    reply = clients["bedrock-runtime"].invoke_model(modelId="tiny", body=json.dumps({"prompt": "Hello", "max_gen_len": 4}))
    assert "generation" in json.loads(reply["body"].read())
