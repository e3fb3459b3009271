"""Hyperparameters given as "auto": accepted for numeric keys only, chosen from the data by tuneforge.training.auto's
rules (each within its family's range, each with its reason), and used by a real job driven through boto3."""

from __future__ import annotations

import json
import math
import time

import pytest
from botocore.exceptions import ClientError

from tests.api_server import tuneforge
from tuneforge.errors import InvalidInput
from tuneforge.training.auto import DataFacts, choose
from tuneforge.training.hparams import family_range, parse_hyperparameters

NUMERIC = ("epochCount", "batchSize", "learningRate", "learningRateWarmupSteps", "loraRank", "loraAlpha", "loraDropout",
           "maxSequenceLength", "gradientAccumulationSteps", "seed", "weightDecay", "checkpointEveryEpochs")


def all_auto(family="default", keys=NUMERIC):
    return parse_hyperparameters({k: "auto" for k in keys}, family=family)


def test_auto_is_accepted_for_numeric_keys_and_refused_for_choices():
    hp = parse_hyperparameters({"epochCount": "auto", "learningRate": "AUTO ", "loraRank": "8"})
    assert set(hp.auto) == {"epochCount", "learningRate"} and hp.lora_rank == 8
    for key in ("method", "loraTargetModules"):
        with pytest.raises(InvalidInput) as err:
            parse_hyperparameters({key: "auto"})
        assert f"hyperParameters.{key}: \"auto\" applies to numeric hyperparameters" in err.value.message


@pytest.mark.parametrize(("records", "epochs", "batch", "rank"), [(10, 10, 1, 8), (40, 3, 2, 8), (1000, 3, 8, 16),
                                                                  (5000, 3, 8, 16), (20000, 1, 8, 32)])
def test_the_rules_follow_the_data(records, epochs, batch, rank):
    hp, why = choose(all_auto(), DataFacts(records), family="default")
    assert (hp.epoch_count, hp.batch_size, hp.lora_rank, hp.lora_alpha) == (epochs, batch, rank, 2 * rank)
    assert hp.learning_rate == pytest.approx(2e-4 * math.sqrt(batch / 8))
    steps = math.ceil(records / batch) * epochs
    assert hp.warmup_steps == min(250, max(1, math.ceil(0.03 * steps)))
    assert hp.auto == () and set(why) == set(NUMERIC)
    assert all(c.reason for c in why.values())
    assert why["epochCount"].value == epochs and str(records) in why["epochCount"].reason


def test_choices_stay_in_the_family_range_and_pretraining_reads_once():
    hp, _ = choose(all_auto("llama2", ("epochCount", "batchSize", "learningRate")), DataFacts(10), family="llama2")
    low, high, _ = family_range("llama2", "batchSize")
    assert hp.batch_size == 1 == low == high and hp.epoch_count == 10 and hp.learning_rate == pytest.approx(1e-4)
    hp, why = choose(all_auto(keys=("epochCount",)), DataFacts(50, pretraining=True), family="default")
    assert hp.epoch_count == 1 and "once" in why["epochCount"].reason
    untouched = parse_hyperparameters({"epochCount": "2"})
    assert choose(untouched, DataFacts(5), family="default") == (untouched, {})


@pytest.mark.server()
def test_a_job_with_auto_hyperparameters_completes_through_boto3(server, tmp_path):
    data = tmp_path / "auto.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Room {i}. Summary: ", "completion": f"Guest in room {i}."}) + "\n"
                            for i in range(20)))
    bedrock = server.client("bedrock")
    arn = bedrock.create_model_customization_job(
        jobName="auto-job", customModelName="auto-model", roleArn="arn:aws:iam::123456789012:role/t", baseModelIdentifier="tiny",
        trainingDataConfig={"s3Uri": str(data)}, outputDataConfig={"s3Uri": f"file://{tmp_path}/out/"},
        hyperParameters={"epochCount": "auto", "batchSize": "auto", "learningRate": "auto", "maxSequenceLength": "64"})["jobArn"]
    deadline = time.monotonic() + 240
    while (job := bedrock.get_model_customization_job(jobIdentifier=arn))["status"] == "InProgress":
        assert time.monotonic() < deadline, job
        time.sleep(1)
    assert job["status"] == "Completed", job.get("failureMessage")
    assert job["hyperParameters"]["learningRate"] == "auto"  # what the user asked, as Bedrock echoes it
    assert bedrock.get_custom_model(modelIdentifier="auto-model")["modelArn"] == job["outputModelArn"]

    shown = json.loads(tuneforge(server.home, "jobs", "get", "auto-job", "--json").stdout)
    chosen = {k: v["value"] for k, v in shown["chosenHyperParameters"].items()}
    expected, _ = choose(parse_hyperparameters({"epochCount": "auto", "batchSize": "auto", "learningRate": "auto"}),
                         DataFacts(20), family="default")
    assert chosen == {"epochCount": expected.epoch_count, "batchSize": expected.batch_size, "learningRate": expected.learning_rate}
    assert chosen["epochCount"] == 5 and chosen["batchSize"] == 1  # 20 records: 100 examples seen; 16+ steps an epoch
    assert shown["progress"]["totalSteps"] == 5 * 20  # the trainer ran what was chosen
    table = tuneforge(server.home, "jobs", "get", "auto-job").stdout
    assert "epochCount (auto)" in table and "OpenAI's rule" in table
