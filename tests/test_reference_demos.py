"""The two reference notebooks end to end with boto3 alone, data in S3 (moto's standalone server, reached by the
server and its job processes through AWS_ENDPOINT_URL_S3), on a tiny model aliased to Bedrock's ids:

1. Llama 2 fine-tuning: list the fine-tunable foundation models, invoke the base with a Llama 2 body, upload
   prompt/completion JSONL, FINE_TUNING with string hyperparameters, poll to Completed, get_custom_model,
   provisioned throughput to InService, invoke its ARN (plain and streaming), delete it.
2. Titan continued pre-training: the same with {"input"} JSONL, CONTINUED_PRE_TRAINING and Titan bodies.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.jobs.service import JobService
from tuneforge.settings import load_settings


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


# ---- the notebooks on their real data (../shared/data; skipped with a reason where it is absent) --------------------
SHARED = Path(os.environ.get("TUNEFORGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DIALOGSUM_TRAIN = SHARED / "dialogsum" / "train.jsonl"
BOOK_PDF = SHARED / "pdf" / "rlhf-book-ch01-14.pdf"
REFERENCE_PROMPT = "Summarize the simplest and most interesting part of the following conversation.\n\n{dialogue}\n\nSummary: "
CHUNK_CHARS = 4000  # the notebook splits its PDF into ~4,000-character chunks with overlap, about a page each


def _example(name: str):
    """A module of examples/ (scripts, not a package), so the test prepares data with the example's own code."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebook_records = _example("continued_pretraining_book").notebook_records


def widened(tiny_model_dir: Path, target: Path, context: int) -> Path:
    """The tiny model with a longer context window (rotary positions: any length works), so real records fit."""
    shutil.copytree(tiny_model_dir, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "max_position_embeddings": context}))
    return target


@pytest.mark.skipif(not DIALOGSUM_TRAIN.is_file(), reason=f"DialogSum not found at {DIALOGSUM_TRAIN}")
def test_reference_fine_tuning_on_the_first_1000_dialogsum_rows(stack, tiny_model_dir, tmp_path):
    """The reference job failed before training ("line 807: record is too long by 63 tokens"): it must train."""
    server, bedrock, runtime, s3 = stack
    settings = load_settings(home=server.home, database_url="")
    catalog = Catalog(settings, open_database(settings.database_url))
    catalog.add("tiny-8k", str(widened(tiny_model_dir, tmp_path / "tiny-8k", 8192)))
    rows = [json.loads(line) for line in DIALOGSUM_TRAIN.read_text().splitlines()[:1000]]
    records = [{"prompt": REFERENCE_PROMPT.format(dialogue=r["dialogue"]), "completion": r["summary"]} for r in rows]
    s3.put_object(Bucket="notebook", Key="dialogsum/train-1000.jsonl", Body="".join(json.dumps(r) + "\n" for r in records).encode())
    arn = bedrock.create_model_customization_job(
        jobName="dialogsum-1000", customModelName="dialogsum-1000-model", roleArn=ROLE,
        baseModelIdentifier="tiny-8k", customizationType="FINE_TUNING",
        trainingDataConfig={"s3Uri": "s3://notebook/dialogsum/train-1000.jsonl"},
        outputDataConfig={"s3Uri": "s3://notebook/output/"}, hyperParameters={"epochCount": "1"},
    )["jobArn"]
    job = poll(lambda: bedrock.get_model_customization_job(jobIdentifier=arn), {"Completed", "Failed", "Stopped"}, timeout=900)
    assert job["status"] == "Completed", job.get("failureMessage")
    metrics = s3.get_object(Bucket="notebook", Key=f"output/model-customization-job-{arn.rsplit('/', 1)[-1]}/"
                            "training_artifacts/step_wise_training_metrics.csv")["Body"].read().decode().splitlines()
    assert len(metrics) == 1 + 125  # the default batchSize of 8: every record trained, the long ones included


@pytest.mark.skipif(not BOOK_PDF.is_file(), reason=f"the rlhf-book PDF not found at {BOOK_PDF}")
def test_reference_continued_pre_training_on_the_pdf_book(stack, tiny_model_dir):
    """The notebook's data preparation: the PDF's text in 4,000-character chunks, one {"input"} per chunk. The first
    24 chunks (a fifth of the book) keep it short: Titan trains at batchSize 1 within Bedrock's 4,096-token limit."""
    server, bedrock, runtime, s3 = stack
    records = notebook_records([str(BOOK_PDF)], CHUNK_CHARS)
    chunks = [r["input"] for r in records]
    assert len(chunks) > 100 and max(len(c) for c in chunks) <= CHUNK_CHARS and min(len(c) for c in chunks[:-1]) > CHUNK_CHARS / 2
    records, chunks = records[:24], chunks[:24]
    s3.put_object(Bucket="notebook", Key="book/rlhf-book.jsonl", Body="".join(json.dumps(r) + "\n" for r in records).encode())
    body = json.dumps({"inputText": "Describe the book.", "textGenerationConfig": {"maxTokenCount": 8, "temperature": 0}})
    job_arn, pt_arn = customize_and_serve(bedrock, "CONTINUED_PRE_TRAINING", TITAN, "book/rlhf-book.jsonl",
                                          {"epochCount": "1", "batchSize": "1", "learningRate": "0.0001"})
    # every chunk is longer than the tiny model's 256-token context: split into rows, none refused
    settings = load_settings(home=server.home, database_url="")
    sessions = open_database(settings.database_url)
    progress = JobService(settings, sessions, Catalog(settings, sessions), reconcile=False).get(job_arn).progress
    assert progress["splitRecords"] == len(chunks) and progress["tokensTrained"] == progress["trainingTokens"]
    answer = json.loads(runtime.invoke_model(modelId=pt_arn, body=body)["body"].read())["results"][0]
    assert answer["tokenCount"] > 0
    bedrock.delete_provisioned_model_throughput(provisionedModelId=pt_arn)


def test_a_missing_training_object_is_refused_at_creation(stack):
    _, bedrock, _, _ = stack
    with pytest.raises(ClientError) as err:
        bedrock.create_model_customization_job(
            jobName="nodata", customModelName="nodata-model", roleArn=ROLE, baseModelIdentifier=LLAMA,
            customizationType="FINE_TUNING", trainingDataConfig={"s3Uri": "s3://notebook/never-uploaded.jsonl"},
            outputDataConfig={"s3Uri": "s3://notebook/output/"}, hyperParameters={"epochCount": "1", "batchSize": "1"})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "s3://notebook/never-uploaded.jsonl" in err.value.response["Error"]["Message"]
    assert bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
