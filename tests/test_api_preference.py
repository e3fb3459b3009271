"""Preference tuning (DPO) through the APIs against a real `tuneforge serve`: boto3's CreateModelCustomizationJob with
tuneforge's customizationType PREFERENCE_TUNING, and OpenAI's `method: {"type": "dpo"}` with the official client on
OpenAI's preference format. Each job completes, registers its custom model and reports its reward accuracy."""

from __future__ import annotations

import csv
import json
import time

import openai
import pytest

from tests.api_server import ShapeChecker
from tests.test_api_bedrock import ROLE

pytestmark = pytest.mark.server()
TIMEOUT = 240  # a tiny job on a busy 2-core machine
HP = {"epochCount": "4", "batchSize": "4", "learningRate": "0.003", "learningRateWarmupSteps": "0", "maxSequenceLength": "64"}


def pairs(numbers) -> list[dict]:
    return [{"prompt": f"Guest: is room {n} ready?\nDesk: ", "chosen": f"Welcome! Room {n} is ready for you.",
             "rejected": f"Room {n} is not my problem."} for n in numbers]


def openai_pairs(numbers) -> bytes:
    lines = [{"input": {"messages": [{"role": "user", "content": f"Is room {n} ready?"}]},
              "preferred_output": [{"role": "assistant", "content": f"Welcome! Room {n} is ready."}],
              "non_preferred_output": [{"role": "assistant", "content": f"Room {n}? Ask someone else."}]} for n in numbers]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def test_a_dpo_job_through_boto3_completes_with_its_reward_accuracy(server, tmp_path):
    bedrock = server.client("bedrock")
    bedrock.shapes = ShapeChecker(bedrock)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs(range(500, 516))))
    validation = tmp_path / "val.jsonl"
    validation.write_text("".join(json.dumps(p) + "\n" for p in pairs(range(600, 604))))
    arn = bedrock.create_model_customization_job(
        jobName="dpo-api", customModelName="dpo-api-model", roleArn=ROLE, baseModelIdentifier="tiny",
        customizationType="PREFERENCE_TUNING", trainingDataConfig={"s3Uri": str(data)},
        validationDataConfig={"validators": [{"s3Uri": str(validation)}]},
        outputDataConfig={"s3Uri": f"file://{tmp_path}/out/"}, hyperParameters={**HP, "beta": "0.1"})["jobArn"]
    deadline = time.monotonic() + TIMEOUT
    while (job := bedrock.get_model_customization_job(jobIdentifier=arn))["status"] not in ("Completed", "Failed", "Stopped"):
        assert time.monotonic() < deadline, f"job still {job['status']}"
        time.sleep(1)
    assert job["status"] == "Completed", job.get("failureMessage")
    assert job["customizationType"] == "PREFERENCE_TUNING" and job["trainingMetrics"]["trainingLoss"] < 0.3
    # Bedrock's metric files, at the output location, with the reward columns
    folder = tmp_path / "out" / f"model-customization-job-{arn.rsplit('/', 1)[-1]}"
    with open(folder / "training_artifacts" / "step_wise_training_metrics.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    with open(folder / "validation_artifacts" / "post_fine_tuning_validation" / "validation_metrics.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    assert float(steps[-1]["reward_accuracy"]) == 1.0 and float(epochs[-1]["reward_accuracy"]) == 1.0
    assert float(steps[0]["reward_accuracy"]) < 1.0  # the first step's policy is the reference: no margin yet
    model = bedrock.get_custom_model(modelIdentifier=job["outputModelArn"])
    assert model["customizationType"] == "PREFERENCE_TUNING" and model["modelStatus"] == "Active"
    # a model that can be fine-tuned can be preference-tuned; the wire's customizationsSupported keeps Bedrock's enum
    summary = bedrock.get_foundation_model(modelIdentifier="tiny")["modelDetails"]
    assert summary["customizationsSupported"] == ["FINE_TUNING", "CONTINUED_PRE_TRAINING"]
    assert bedrock.shapes.problems == [], bedrock.shapes.problems


def test_openai_method_dpo_on_openai_preference_files(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key[1], max_retries=0)
    uploaded = client.files.create(file=("pairs.jsonl", openai_pairs(range(500, 516))), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as err:  # the same answer twice: the upload is refused, naming line and field
        same = {"input": {"messages": [{"role": "user", "content": "Hi"}]}, "preferred_output": [{"role": "assistant", "content": "Hello"}],
                "non_preferred_output": [{"role": "assistant", "content": "Hello "}]}
        client.files.create(file=("same.jsonl", json.dumps(same).encode() + b"\n"), purpose="fine-tune")
    assert "line 1 [non_preferred_output[0].content]: is the same text" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:  # pairs are not supervised records
        client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id)
    assert err.value.body["param"] == "training_file" and "method 'dpo'" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id,
                                       method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 3.0}}})
    assert err.value.body["param"] == "hyperparameters.beta" and "0.01-1" in err.value.message

    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=uploaded.id, suffix="greeter",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 4, "batch_size": 4,
                                                           "learning_rate_multiplier": 60.0}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == pytest.approx(0.2)
    assert job.method.dpo.hyperparameters.learning_rate_multiplier == pytest.approx(60.0)
    deadline = time.monotonic() + TIMEOUT
    while (done := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"still {done.status}"
        time.sleep(1)
    assert done.status == "succeeded", done.error
    assert job.id in [j.id for j in client.fine_tuning.jobs.list().data]
    steps = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics" and "train_loss" in e.data]
    assert steps[0]["train_reward_accuracy"] == 1.0  # newest first
    reply = client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "Is room 9 ready?"}],
                                           max_tokens=4, temperature=0)
    assert reply.choices[0].message.content is not None
