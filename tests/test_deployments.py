"""Provisioned throughput: the record rules (on SQLite and PostgreSQL), and the whole life of a deployment through
real boto3 clients against a real `tuneforge serve` with real worker processes: a custom model from a real job is
deployed, invoked (Llama 2 body, Titan body, Converse, streams), re-pointed to its base and back, scaled to 2
units with the CLI, survives a killed worker, throttles when overloaded, and is deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker
from tests.test_api_bedrock import code, job_args, wait_for
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.deployments import DeploymentService
from tuneforge.settings import load_settings


# ---- records ------------------------------------------------------------------------------------
@pytest.fixture
def service(tmp_path, database_url, tiny_model_dir):
    settings = load_settings(home=tmp_path / "home", database_url=database_url, max_model_units=3)
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    for model_id in ("tiny", "other"):
        if model_id not in {m.model_id for m in catalog.list()}:
            catalog.add(model_id, str(tiny_model_dir))
    return DeploymentService(settings, sessions, catalog, CustomModelRegistry(settings, sessions))


@pytest.mark.parametrize(("kwargs", "error", "field"), [
    ({"name": "bad name!"}, InvalidInput, "provisionedModelName"),
    ({"name": "x" * 64}, InvalidInput, "provisionedModelName"),
    ({"units": 0}, InvalidInput, "modelUnits"),
    ({"units": 4}, QuotaExceeded, "modelUnits"),
    ({"model_id": "no-such-model"}, NotFound, "modelId"),
    ({"commitment": "TwoDays"}, InvalidInput, "commitmentDuration"),
])
def test_bad_requests_name_the_field(service, kwargs, error, field):
    args = {"name": "dep", "model_id": "tiny", "units": 1, **kwargs}
    with pytest.raises(error) as err:
        service.create(**args)
    assert err.value.field == field
    assert service.list().deployments == []  # nothing half-made


def test_records_follow_bedrocks_rules(service):
    row = service.create(name="dep-1", model_id="tiny", units=2, commitment="OneMonth", client_request_token="t-1")
    assert row.status == "Creating" and row.model_units == row.desired_model_units == 2
    assert row.provisioned_model_arn.endswith(f":provisioned-model/{row.provisioned_model_id}")
    assert row.commitment_expiration_time > row.created_at
    assert service.create(name="dep-1", model_id="tiny", units=2, client_request_token="t-1").provisioned_model_id == row.provisioned_model_id
    with pytest.raises(Conflict):
        service.create(name="dep-1", model_id="tiny", units=1)
    for identifier in ("dep-1", row.provisioned_model_id, row.provisioned_model_arn):
        assert service.get(identifier).provisioned_model_id == row.provisioned_model_id
    with pytest.raises(Conflict, match="wait until it is InService"):
        service.update("dep-1", units=1)  # still Creating
    service.settled(row.provisioned_model_id, model_arn=row.desired_model_arn, units=2)
    with pytest.raises(InvalidInput, match="re-point only") as err:
        service.update("dep-1", model_id="other")  # another base model
    assert err.value.field == "desiredModelId"
    updated = service.update("dep-1", units=1, name="dep-renamed")
    assert (updated.status, updated.model_units, updated.desired_model_units, updated.provisioned_model_name) == ("Updating", 2, 1, "dep-renamed")
    service.failed(row.provisioned_model_id, "out of memory")  # a failed update keeps serving what it served
    kept = service.get("dep-renamed")
    assert (kept.status, kept.desired_model_units) == ("InService", 2) and "out of memory" in kept.failure_message
    second = service.create(name="dep-2", model_id="other", units=1)
    service.failed(second.provisioned_model_id, "no weights")
    assert service.get("dep-2").status == "Failed"
    with pytest.raises(Conflict, match="delete it"):
        service.update("dep-2", units=2)
    first = service.list(max_results=1, ascending=True)
    assert [d.provisioned_model_name for d in first.deployments] == ["dep-renamed"]
    assert [d.provisioned_model_name for d in service.list(max_results=1, ascending=True, next_token=first.next_token).deployments] == ["dep-2"]
    assert [d.provisioned_model_name for d in service.list(status="Failed").deployments] == ["dep-2"]
    with pytest.raises(InvalidInput):
        service.list(status="Sleeping")
    service.delete("dep-2")
    with pytest.raises(NotFound):
        service.get("dep-2")


# ---- the server ----------------------------------------------------------------------------------
# "broken": registered fine, cannot load; one queued request per worker, so overload is easy to reach
pytestmark = pytest.mark.server(unloadable=("broken",), env={"TUNEFORGE_MAX_QUEUE": "1"})


@pytest.fixture(scope="module")
def bedrock(server):
    c = server.client("bedrock")
    c.shapes = ShapeChecker(c)
    yield c
    assert c.shapes.problems == [], c.shapes.problems


@pytest.fixture(scope="module")
def no_retries(server):
    return server.client("bedrock-runtime", retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120)


@pytest.fixture(scope="module")
def runtime(server):
    c = server.client("bedrock-runtime")
    c.shapes = ShapeChecker(c)
    yield c
    assert c.shapes.problems == [], c.shapes.problems


def wait_in_service(bedrock, arn, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pt = bedrock.get_provisioned_model_throughput(provisionedModelId=arn)
        if pt["status"] not in ("Creating", "Updating"):
            return pt
        time.sleep(0.3)
    raise AssertionError(f"still {pt['status']}")


def workers(server) -> list[psutil.Process]:
    found = []
    for process in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and any("tuneforge.inference.worker" in part for part in process.cmdline()):
                found.append(process)
        except psutil.Error:  # exited meanwhile
            pass
    return found


def cli(server, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUNEFORGE_HOME": str(server.home), "TUNEFORGE_PORT": str(server.port)}
    return subprocess.run([sys.executable, "-m", "tuneforge", *args], env=env, capture_output=True, text=True, timeout=300)


LLAMA_BODY = json.dumps({"prompt": "[INST] Where is room 507? [/INST]", "max_gen_len": 8, "temperature": 0})
TITAN_BODY = json.dumps({"inputText": "Where is room 507?", "textGenerationConfig": {"maxTokenCount": 8, "temperature": 0}})


@pytest.mark.timeout(1200)  # its own waits (job, three loads, a CLI update) add up to more than the default
def test_custom_model_deployment_lifecycle(server, bedrock, runtime, no_retries, tmp_path):
    hyperparameters = {"epochCount": "4", "batchSize": "2", "learningRate": "0.01", "maxSequenceLength": "64"}  # enough to change outputs
    job = wait_for(bedrock, bedrock.create_model_customization_job(**job_args(tmp_path, "deploy-job", hyperParameters=hyperparameters))["jobArn"])
    assert job["status"] == "Completed", job.get("failureMessage")
    custom_arn = job["outputModelArn"]
    with pytest.raises(ClientError) as err:  # Bedrock's rule: a custom model is invoked through a provisioned throughput
        runtime.invoke_model(modelId=custom_arn, body=LLAMA_BODY)
    assert code(err.value)[0] == "ValidationException"

    arn = bedrock.create_provisioned_model_throughput(provisionedModelName="hotel", modelId=custom_arn, modelUnits=1)["provisionedModelArn"]
    with pytest.raises(ClientError) as err:  # before it is InService: retryable, never a hang
        no_retries.invoke_model(modelId=arn, body=LLAMA_BODY)
    assert code(err.value) in (("ModelNotReadyException", 429), ("ThrottlingException", 429))
    pt = wait_in_service(bedrock, arn)
    assert (pt["status"], pt["modelArn"], pt["modelUnits"]) == ("InService", custom_arn, 1)
    assert pt["foundationModelArn"].endswith("foundation-model/tiny")
    assert len(workers(server)) == 1

    llama = json.loads(runtime.invoke_model(modelId=arn, body=LLAMA_BODY)["body"].read())
    assert set(llama) == {"generation", "prompt_token_count", "generation_token_count", "stop_reason"}
    titan = json.loads(runtime.invoke_model(modelId=arn, body=TITAN_BODY)["body"].read())
    assert set(titan) == {"inputTextTokenCount", "results"}
    converse = runtime.converse(modelId=arn, messages=[{"role": "user", "content": [{"text": "Check-in for John Sandals"}]}],
                                inferenceConfig={"maxTokens": 8, "temperature": 0})
    chunks = [json.loads(e["chunk"]["bytes"]) for e in runtime.invoke_model_with_response_stream(modelId=arn, body=LLAMA_BODY)["body"]]
    assert "".join(c["generation"] for c in chunks) == llama["generation"]
    streamed = "".join(e["contentBlockDelta"]["delta"]["text"] for e in runtime.converse_stream(
        modelId=arn, messages=[{"role": "user", "content": [{"text": "Check-in for John Sandals"}]}],
        inferenceConfig={"maxTokens": 8, "temperature": 0})["stream"] if "contentBlockDelta" in e)
    assert streamed == converse["output"]["message"]["content"][0]["text"]

    with pytest.raises(ClientError) as err:  # the deployment uses it
        bedrock.delete_custom_model(modelIdentifier=custom_arn)
    assert code(err.value)[0] == "ConflictException" and "hotel" in str(err.value)

    # re-point to the base model, then back
    bedrock.update_provisioned_model_throughput(provisionedModelId=arn, desiredModelId="tiny")
    assert bedrock.get_provisioned_model_throughput(provisionedModelId=arn)["status"] == "Updating"
    pt = wait_in_service(bedrock, arn)
    assert pt["modelArn"].endswith("foundation-model/tiny") and pt["desiredModelArn"] == pt["modelArn"]
    base_llama = json.loads(runtime.invoke_model(modelId=arn, body=LLAMA_BODY)["body"].read())
    assert base_llama["generation"] != llama["generation"]  # the adapter is gone (trained at lr 1e-4, it changes greedy output)
    bedrock.update_provisioned_model_throughput(provisionedModelId=arn, desiredModelId=custom_arn)
    assert wait_in_service(bedrock, arn)["modelArn"] == custom_arn
    assert json.loads(runtime.invoke_model(modelId=arn, body=LLAMA_BODY)["body"].read())["generation"] == llama["generation"]
    assert len(workers(server)) == 1  # the old workers were closed

    # scale to 2 units with the CLI; both serve
    done = cli(server, "deployments", "update", "hotel", "--units", "2", "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr
    assert bedrock.get_provisioned_model_throughput(provisionedModelId=arn)["modelUnits"] == 2
    assert len(workers(server)) == 2
    listed = json.loads(cli(server, "deployments", "list", "--json").stdout)["provisionedModelSummaries"]
    assert [(d["provisionedModelName"], d["modelUnits"], d["status"]) for d in listed] == [("hotel", 2, "InService")]
    answer = cli(server, "invoke", "hotel", "Where is room 507?", "--max-tokens", "6", "--temperature", "0")
    assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr
    env = {**os.environ, "TUNEFORGE_HOME": str(server.home), "TUNEFORGE_PORT": str(server.port)}
    chat = subprocess.run([sys.executable, "-m", "tuneforge", "chat", "hotel", "--max-tokens", "4", "--temperature", "0"],
                          input="Hello\nAnd room 507?\n", env=env, capture_output=True, text=True, timeout=120)
    assert chat.returncode == 0 and chat.stdout.count("\n") >= 2, chat.stderr  # two turns through the server's Converse

    # a killed worker: requests keep being answered by the other, and it is replaced
    victim = workers(server)[0]
    victim.kill()
    time.sleep(1)  # the server notices at once (the worker's stdout closes); give the reader thread a moment
    for _ in range(4):
        assert json.loads(runtime.invoke_model(modelId=arn, body=LLAMA_BODY)["body"].read())["generation"] == llama["generation"]
    deadline = time.monotonic() + 60
    while len(workers(server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(workers(server)) == 2 and victim.pid not in {p.pid for p in workers(server)}

    bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)
    with pytest.raises(ClientError) as err:
        bedrock.get_provisioned_model_throughput(provisionedModelId=arn)
    assert code(err.value) == ("ResourceNotFoundException", 404)
    # a replacement still loading when the deployment went is closed once it is up: on a busy machine, a while
    deadline = time.monotonic() + 120
    while workers(server) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert workers(server) == []
    bedrock.delete_custom_model(modelIdentifier=custom_arn)  # no longer in use


def test_a_model_that_cannot_load_fails_with_the_reason(bedrock):
    arn = bedrock.create_provisioned_model_throughput(provisionedModelName="broken", modelId="broken", modelUnits=1)["provisionedModelArn"]
    pt = wait_in_service(bedrock, arn)
    assert pt["status"] == "Failed" and "could not be loaded" in pt["failureMessage"]
    summaries = bedrock.list_provisioned_model_throughputs(statusEquals="Failed")["provisionedModelSummaries"]
    assert [s["provisionedModelArn"] for s in summaries] == [arn]
    bedrock.delete_provisioned_model_throughput(provisionedModelId="broken")


def test_overload_is_throttled_not_queued(server, bedrock, no_retries):
    """24 requests at once on one unit (batch 8, queue 1): at least 8 are answered, the rest refused at once."""
    arn = bedrock.create_provisioned_model_throughput(provisionedModelName="busy", modelId="tiny", modelUnits=1)["provisionedModelArn"]
    assert wait_in_service(bedrock, arn)["status"] == "InService"
    body = json.dumps({"prompt": "Count to one thousand:", "max_gen_len": 240, "temperature": 1.0})
    outcomes: list[str] = []
    start = threading.Barrier(24)  # all at once: 8 decode together, 1 may wait, the rest are refused

    def call() -> None:
        start.wait()
        try:
            no_retries.invoke_model(modelId=arn, body=body)["body"].read()
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(code(exc)[0])

    threads = [threading.Thread(target=call) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(outcomes) == {"ok", "ThrottlingException"}, outcomes
    assert outcomes.count("ok") >= 8
    bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)


def test_chat_keeps_the_conversation(server, tiny_model_dir):
    """`tuneforge chat` on a local model: two turns and a reset through stdin, each answered."""
    env = {**os.environ, "TUNEFORGE_HOME": str(server.home)}
    done = subprocess.run([sys.executable, "-m", "tuneforge", "chat", "tiny", "--max-tokens", "4", "--temperature", "0"],
                          input="Hello\nAnd room 507?\n/reset\nHello\n/exit\n", env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") >= 3 and "conversation cleared" in done.stderr  # three answers, each ends its line
