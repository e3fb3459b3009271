"""Evaluation jobs (Bedrock's CreateEvaluationJob, automated model evaluation) through real boto3 against a real server:
the base model and a custom model compared on summarization with ROUGE and a judge metric, Bedrock's output layout,
the summary and the HTML report; precomputed responses; bad requests named; stop and delete."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker, tuneforge
from tests.test_custom_model_deployments import adapter
from tuneforge.db import open_database
from tuneforge.db.tables import CustomizationJobRow
from tuneforge.evaluation.metrics import deterministic
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.settings import load_settings

pytestmark = pytest.mark.server(embedder=True)
ROLE = "arn:aws:iam::123456789012:role/eval"
TIMEOUT = 240


@pytest.fixture(scope="module")
def bedrock(server):
    client = server.client("bedrock")
    client.shapes = ShapeChecker(client)
    yield client
    assert client.shapes.problems == [], client.shapes.problems


@pytest.fixture(scope="module")
def custom_model(server, tiny_model_dir, tmp_path_factory) -> str:
    settings = load_settings(home=server.home, database_url="")
    registry = CustomModelRegistry(settings, open_database(settings.database_url))
    job = CustomizationJobRow(
        job_id="evaladapter1", job_arn="arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tiny/evaladapter1",
        job_name="job-eval", custom_model_name="eval-summarizer", role_arn=ROLE, base_model_id="tiny",
        base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tiny", customization_type="FINE_TUNING", hyperparameters={},
        training_data_uri="/d.jsonl", validation_data_uris=[], output_uri="/o", kms_key_id=None)
    artifact = adapter(tiny_model_dir, tmp_path_factory.mktemp("eval-adapter") / "a", seed=3)
    return registry.register(job, artifact_dir=artifact, artifact_kind="adapter", training_loss=None, validation_loss=None).model_arn


def dataset(path: Path, n: int = 4, precomputed: str | None = None) -> str:
    rows = []
    for i in range(n):
        # short: the judge's prompt holds the prompt, the reference and the response, within the tiny model's 256 tokens
        row = {"prompt": f"Room {500 + i}? <b>Hi</b>", "referenceResponse": f"Room {500 + i}.", "category": "hotel"}
        if precomputed:
            row["modelResponses"] = [{"response": f"Room {500 + i}." if i % 2 else "Nothing.",
                                      "modelIdentifier": precomputed}]
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def job_args(tmp_path: Path, name: str, models: list[dict], metrics=("Builtin.Accuracy", "Tuneforge.Rouge1", "Builtin.Correctness"),
             data: str | None = None, evaluator: str | None = "tiny") -> dict:
    automated = {"datasetMetricConfigs": [{"taskType": "Summarization", "dataset": {
        "name": "checkins", "datasetLocation": {"s3Uri": data or dataset(tmp_path / f"{name}.jsonl")}}, "metricNames": list(metrics)}]}
    if evaluator:
        automated["evaluatorModelConfig"] = {"bedrockEvaluatorModels": [{"modelIdentifier": evaluator}]}
    return dict(jobName=name, roleArn=ROLE, evaluationConfig={"automated": automated}, inferenceConfig={"models": models},
                outputDataConfig={"s3Uri": f"file://{tmp_path}/eval-out/"})


def model(identifier: str) -> dict:
    return {"bedrockModel": {"modelIdentifier": identifier, "inferenceParams": json.dumps({"inferenceConfig": {"maxTokens": 12}})}}


def wait(bedrock, arn: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while (job := bedrock.get_evaluation_job(jobIdentifier=arn))["status"] in ("InProgress", "Stopping"):
        assert time.monotonic() < deadline, job
        time.sleep(1)
    return job


def test_base_and_custom_side_by_side_with_rouge_and_a_judge(server, bedrock, custom_model, tmp_path):
    arn = bedrock.create_evaluation_job(**job_args(tmp_path, "base-vs-custom", [model("tiny"), model(custom_model)]))["jobArn"]
    job = wait(bedrock, arn)
    assert job["status"] == "Completed", job.get("failureMessages")
    assert job["jobType"] == "Automated" and job["inferenceConfig"]["models"][1]["bedrockModel"]["modelIdentifier"] == custom_model
    job_id = arn.rsplit("/", 1)[1]
    root = tmp_path / "eval-out" / "base-vs-custom" / job_id
    summary = json.loads((root / "summary.json").read_text())
    assert set(summary["models"]) == {"tiny", custom_model}
    answers = {}
    for identifier in ("tiny", custom_model):
        folder = root / "models" / identifier.replace(":", "_").replace("/", "_") / "taskTypes" / "Summarization" / "datasets" / "checkins"
        lines = [json.loads(x) for x in (folder / f"{job_id}_output.jsonl").read_text().splitlines()]
        assert len(lines) == 4
        answers[identifier] = [x["modelResponses"][0]["response"] for x in lines]
        for x in lines:  # every score as Bedrock writes it; the deterministic ones recomputed here
            scores = {s["metricName"]: s for s in x["automatedEvaluationResult"]["scores"]}
            response, reference = x["modelResponses"][0]["response"], x["inputRecord"]["referenceResponse"]
            assert scores["Builtin.Accuracy"]["result"] == pytest.approx(deterministic("Tuneforge.RougeL", "Summarization", response, reference))
            assert scores["Tuneforge.Rouge1"]["result"] == pytest.approx(deterministic("Tuneforge.Rouge1", "Summarization", response, reference))
            judged = scores["Builtin.Correctness"]
            assert judged["evaluatorDetails"][0]["modelIdentifier"] == "tiny" and judged["evaluatorDetails"][0]["explanation"]
            assert judged["result"] is None or 0 <= judged["result"] <= 1
        means = summary["models"][identifier]["Summarization"]
        assert means["Tuneforge.Rouge1"] == pytest.approx(
            sum(s["result"] for x in lines for s in x["automatedEvaluationResult"]["scores"] if s["metricName"] == "Tuneforge.Rouge1") / 4, abs=1e-4)
    assert answers["tiny"] != answers[custom_model]  # the adapter changes what it says: two models, not one twice
    report = (root / "report.html").read_text()
    assert "&lt;b&gt;Hi&lt;/b&gt;" in report and "<b>Hi</b>" not in report  # the prompt shown as text
    assert "Builtin.Correctness" in report and "<svg" in report and "<script" not in report
    shown = tuneforge(server.home, "eval", "jobs", "get", "base-vs-custom").stdout  # the CLI's side-by-side table
    assert "Tuneforge.Rouge1" in shown and "tiny" in shown and "report" in shown
    assert tuneforge(server.home, "eval", "jobs", "report", "base-vs-custom").stdout.strip().endswith("report.html")
    listed = bedrock.list_evaluation_jobs(nameContains="base-vs")["jobSummaries"]
    assert [j["jobArn"] for j in listed] == [arn] and listed[0]["evaluationTaskTypes"] == ["Summarization"]
    assert listed[0]["modelIdentifiers"] == ["tiny", custom_model]


def test_precomputed_responses_are_scored_as_they_are(server, bedrock, tmp_path):
    data = dataset(tmp_path / "pre.jsonl", precomputed="my-rag-app")
    args = job_args(tmp_path, "precomputed", [{"precomputedInferenceSource": {"inferenceSourceIdentifier": "my-rag-app"}}],
                    metrics=("Tuneforge.ExactMatch",), data=data, evaluator=None)
    (tmp_path / "request.json").write_text(json.dumps(args))  # the CLI takes Bedrock's request JSON as it is
    arn = json.loads(tuneforge(server.home, "eval", "jobs", "create", str(tmp_path / "request.json"), "--json").stdout)["jobArn"]
    job = wait(bedrock, arn)
    assert job["status"] == "Completed", job.get("failureMessages")
    summary = json.loads(next((tmp_path / "eval-out" / "precomputed").glob("*/summary.json")).read_text())
    assert summary["models"]["my-rag-app"]["Summarization"]["Tuneforge.ExactMatch"] == 0.5  # two of four answers match


def code(err) -> str:
    return err.value.response["Error"]["Code"]


def test_bad_requests_are_refused_naming_the_member(bedrock, tmp_path):
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text('{"prompt": "ok"}\n{"referenceResponse": "no prompt"}\n')
    cases = [
        (job_args(tmp_path, "e1", [model("tiny")], metrics=("Builtin.Nonsense",)), "metricNames[0]: unknown metric"),
        (job_args(tmp_path, "e2", [model("tiny")], evaluator=None), "needs an evaluator model"),
        (job_args(tmp_path, "e3", [model("tiny")], evaluator="tiny.embedder"), "is not a text model"),
        (job_args(tmp_path, "e4", [model("tiny")], data=str(bad_line)), "line 2 [prompt]"),
        (job_args(tmp_path, "e5", [model("no.such-model")]), "no.such-model"),
        ({**job_args(tmp_path, "e7", [model("tiny")]), "applicationType": "RagEvaluation"}, "RagEvaluation is not available"),
    ]
    for args, message in cases:
        with pytest.raises(ClientError) as err:
            bedrock.create_evaluation_job(**args)
        assert code(err) in ("ValidationException", "ResourceNotFoundException") and message in str(err.value), (args["jobName"], err.value)
    assert not [j for j in bedrock.list_evaluation_jobs()["jobSummaries"] if j["jobName"].startswith("e")]


def test_stop_then_delete(bedrock, tmp_path):
    many = dataset(tmp_path / "many.jsonl", n=40)
    arn = bedrock.create_evaluation_job(**job_args(tmp_path, "to-stop", [model("tiny")], metrics=("Builtin.Accuracy",), data=many,
                                                    evaluator=None))["jobArn"]
    running = bedrock.batch_delete_evaluation_job(jobIdentifiers=[arn])  # a running job is not deleted
    assert running["evaluationJobs"] == [] and "stop it first" in running["errors"][0]["message"]
    bedrock.stop_evaluation_job(jobIdentifier=arn)
    assert wait(bedrock, arn)["status"] in ("Stopped", "Completed")
    reply = bedrock.batch_delete_evaluation_job(jobIdentifiers=[arn, "no-such-job"])
    assert reply["evaluationJobs"] == [{"jobIdentifier": arn, "jobStatus": "Deleting"}]
    assert [e["jobIdentifier"] for e in reply["errors"]] == ["no-such-job"]
    with pytest.raises(ClientError) as err:
        bedrock.get_evaluation_job(jobIdentifier=arn)
    assert code(err) == "ResourceNotFoundException"
