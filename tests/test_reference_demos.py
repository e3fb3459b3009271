"""The two reference notebooks end to end with boto3 alone, data in S3 (moto's standalone server, reached by the
server and its job processes through AWS_ENDPOINT_URL_S3), on a tiny model aliased to Bedrock's ids:

1. Llama 2 fine-tuning: list the fine-tunable foundation models, invoke the base with a Llama 2 body, upload
   prompt/completion JSONL, FINE_TUNING with string hyperparameters, poll to Completed, get_custom_model,
   provisioned throughput to InService, invoke its ARN (plain and streaming), delete it.
2. Titan continued pre-training: the same with {"input"} JSONL, CONTINUED_PRE_TRAINING and Titan bodies.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest


ROLE = "arn:aws:iam::123456789012:role/bedrock-customization"
LLAMA = "meta.llama2-13b-v1:0:4k"
TITAN = "amazon.titan-text-express-v1:0:8k"

pytestmark = pytest.mark.timeout(900)  # two polls of up to 240 s each (the job, the deployment) and the server's start


@pytest.fixture
def stack(s3_env, start_server):
    server = start_server(aliases={LLAMA: "tiny", TITAN: "tiny"})  # after s3_env: inherits AWS_ENDPOINT_URL_S3 and its credentials
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="notebook")
    return server, server.client("bedrock"), server.client("bedrock-runtime"), s3


def poll(get, done, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = get()
        if state["status"] in done:
            return state
        time.sleep(0.5)
    raise AssertionError(f"still {state['status']}")


def customize_and_serve(bedrock, kind: str, base: str, training_key: str, hyperparameters: dict[str, str]) -> tuple[str, str]:
    job_arn = bedrock.create_model_customization_job(
        jobName=f"{kind.lower().replace('_', '-')}-job", customModelName=f"{kind.lower().replace('_', '-')}-model",
        roleArn=ROLE, baseModelIdentifier=base, customizationType=kind,
        trainingDataConfig={"s3Uri": f"s3://notebook/{training_key}"}, outputDataConfig={"s3Uri": "s3://notebook/output/"},
        hyperParameters=hyperparameters,
    )["jobArn"]
    job = poll(lambda: bedrock.get_model_customization_job(jobIdentifier=job_arn), {"Completed", "Failed", "Stopped"})
    assert job["status"] == "Completed", job.get("failureMessage")
    model = bedrock.get_custom_model(modelIdentifier=job["outputModelArn"])
    assert model["customizationType"] == kind and model["baseModelArn"].endswith(base)
    pt_arn = bedrock.create_provisioned_model_throughput(
        provisionedModelName=f"{kind.lower().replace('_', '-')}-pt", modelId=model["modelArn"], modelUnits=1)["provisionedModelArn"]
    pt = poll(lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=pt_arn), {"InService", "Failed"})
    assert pt["status"] == "InService", pt.get("failureMessage")
    return job_arn, pt_arn


def test_llama2_fine_tuning_notebook(stack):
    server, bedrock, runtime, s3 = stack
    ids = [m["modelId"] for m in bedrock.list_foundation_models(byCustomizationType="FINE_TUNING")["modelSummaries"]]
    assert LLAMA in ids
    body = json.dumps({"prompt": "Summarize: #Person1#: Room 507, please.\n\nSummary: ", "max_gen_len": 8, "temperature": 0})
    base = json.loads(runtime.invoke_model(modelId=LLAMA, body=body)["body"].read())
    assert "generation" in base
    rows = [{"prompt": f"Summarize: #Person1#: Room {i}, please.\n\nSummary: ", "completion": f"#Person1# asks for room {i}."} for i in range(12)]
    s3.put_object(Bucket="notebook", Key="dialogsum/train.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows).encode())
    _, pt_arn = customize_and_serve(bedrock, "FINE_TUNING", LLAMA, "dialogsum/train.jsonl",
                                    {"epochCount": "1", "batchSize": "1", "learningRate": "0.000005"})
    custom = json.loads(runtime.invoke_model(modelId=pt_arn, body=body)["body"].read())
    streamed = "".join(json.loads(e["chunk"]["bytes"])["generation"]
                       for e in runtime.invoke_model_with_response_stream(modelId=pt_arn, body=body)["body"])
    assert streamed == custom["generation"]
    outputs = [o["Key"] for o in s3.list_objects_v2(Bucket="notebook", Prefix="output/")["Contents"]]
    assert any(k.endswith("training_artifacts/step_wise_training_metrics.csv") for k in outputs)
    bedrock.delete_provisioned_model_throughput(provisionedModelId=pt_arn)
    assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []


def test_titan_continued_pre_training_notebook(stack):
    server, bedrock, runtime, s3 = stack
    ids = [m["modelId"] for m in bedrock.list_foundation_models(byCustomizationType="CONTINUED_PRE_TRAINING")["modelSummaries"]]
    assert TITAN in ids
    body = json.dumps({"inputText": "Describe the book.", "textGenerationConfig": {"maxTokenCount": 8, "temperature": 0}})
    before = json.loads(runtime.invoke_model(modelId=TITAN, body=body)["body"].read())["results"][0]["outputText"]
    chunks = [{"input": f"Chapter {i}: the ferry to Lanterna leaves at {i} o'clock; the keeper counts gulls."} for i in range(10)]
    s3.put_object(Bucket="notebook", Key="book/train.jsonl", Body="".join(json.dumps(c) + "\n" for c in chunks).encode())
    _, pt_arn = customize_and_serve(bedrock, "CONTINUED_PRE_TRAINING", TITAN, "book/train.jsonl",
                                    {"epochCount": "2", "batchSize": "2", "learningRate": "0.001"})
    after = json.loads(runtime.invoke_model(modelId=pt_arn, body=body)["body"].read())
    streamed = "".join(json.loads(e["chunk"]["bytes"])["outputText"]
                       for e in runtime.invoke_model_with_response_stream(modelId=pt_arn, body=body)["body"])
    assert streamed == after["results"][0]["outputText"]
    # the alias answered as the model it maps to: the tiny model, asked the same with the same Titan body
    assert before == json.loads(runtime.invoke_model(modelId="tiny", body=body)["body"].read())["results"][0]["outputText"]
    bedrock.delete_provisioned_model_throughput(provisionedModelId=pt_arn)
