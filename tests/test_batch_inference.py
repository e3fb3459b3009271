"""Batch inference (Bedrock's Create/Get/List/StopModelInvocationJob) through real boto3 against a real server, with
the tiny random model: Bedrock's output layout, bad records failing alone, stop, resume after the job's process is
killed, validation at create time, S3 input and output (moto), and the CLI.

The tiny model's context is 256 tokens, so a few hundred words are a prompt too long for it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker, tuneforge
from tuneforge.batch.records import ResultLog, counts
from tuneforge.batch.service import MAX_ATTEMPTS, BatchService
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import BatchJobRow, CustomizationJobRow
from tuneforge.errors import Conflict
from tuneforge.models.resolve import ModelResolver
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.settings import load_settings

# a Bedrock Llama 2 id speaks only Llama 2 bodies; "tiny" takes either family, by the body
pytestmark = pytest.mark.server(aliases={"meta.llama2-13b-chat-v1": "tiny"})
ROLE = "arn:aws:iam::123456789012:role/batch"
ENDED = {"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"}
SHARED = Path(os.environ.get("TUNEFORGE_SHARED_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
INPUT_FIELD = "inputDataConfig.s3InputDataConfig.s3Uri"


def llama(prompt: str, tokens: int = 6, temperature: float = 0.0) -> dict:
    return {"prompt": prompt, "max_gen_len": tokens, "temperature": temperature}


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def bedrock(server):
    client = server.client("bedrock")
    client.shapes = ShapeChecker(client)
    yield client
    assert client.shapes.problems == [], client.shapes.problems
    for job in client.list_model_invocation_jobs()["invocationJobSummaries"]:  # none may go on in the background
        if job["status"] not in ENDED:
            client.stop_model_invocation_job(jobIdentifier=job["jobArn"])


def service(home: Path) -> BatchService:
    """A BatchService of the test's own on the server's database: building it reconciles, as a restarted server does."""
    settings = load_settings(home=home, database_url="")
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    models = ModelResolver(settings, sessions, catalog, CustomModelRegistry(settings, sessions))
    return BatchService(settings, sessions, models, CustomModelDeployments(settings, sessions, models))


def create(bedrock, name: str, input_uri: str, output_uri: str, model: str = "tiny", **extra) -> str:
    return bedrock.create_model_invocation_job(
        jobName=name, roleArn=ROLE, modelId=model, inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri}}, **extra)["jobArn"]


def wait(bedrock, arn: str, *, until=ENDED, timeout: float = 120, check=lambda job: False) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = bedrock.get_model_invocation_job(jobIdentifier=arn)
        if job["status"] in until or check(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"{arn} is still {job['status']} after {timeout} s: {job}")


def out_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def error_of(exc) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def job_log(server, arn: str) -> str:
    return (server.home / "batch" / arn.rsplit("/", 1)[-1] / "job.log").read_text()


def test_bad_records_fail_alone_and_the_job_is_partially_completed(server, bedrock, tmp_path):
    good = [{"recordId": f"r{i}", "modelInput": llama(f"[INST] Question {i}: what is room {500 + i}? [/INST]")} for i in range(6)]
    bad = [
        "{not json",
        {"modelInput": llama("no id")},
        {"recordId": "no-input"},
        {"recordId": "titan-body", "modelInput": {"inputText": "a Titan body to a Llama 2 model"}},
        {"recordId": "too-long", "modelInput": llama("word " * 400)},
        {"recordId": "hot", "modelInput": {"prompt": "x", "temperature": 5}},
    ]
    source = write_jsonl(tmp_path / "in" / "records.jsonl", [*good[:3], "", *bad, *good[3:]])  # a blank line is no record
    arn = create(bedrock, "bad-records", str(source), str(tmp_path / "out"), model="meta.llama2-13b-chat-v1")
    job = wait(bedrock, arn)
    assert job["status"] == "PartiallyCompleted", job
    assert (job["totalRecordCount"], job["processedRecordCount"], job["successRecordCount"], job["errorRecordCount"]) == (12, 12, 6, 6)
    assert "6 of 12 records failed" in job["message"]

    folder = tmp_path / "out" / arn.rsplit("/", 1)[-1]
    lines = out_lines(folder / "records.jsonl.out")
    assert len(lines) == 12
    outputs = {line["recordId"]: line for line in lines if "modelOutput" in line}
    assert sorted(outputs) == [f"r{i}" for i in range(6)]
    for line in outputs.values():
        assert set(line) == {"recordId", "modelInput", "modelOutput"}
        assert set(line["modelOutput"]) == {"generation", "prompt_token_count", "generation_token_count", "stop_reason"}
    errors = [line for line in lines if "error" in line]
    messages = {line.get("recordId", f"line-{i}"): line["error"]["errorMessage"] for i, line in enumerate(errors)}
    assert all(line["error"]["errorCode"] == 400 for line in errors)
    assert [m for m in messages.values() if "records.jsonl line 5: not valid JSON" in m]  # no recordId to echo
    assert [m for m in messages.values() if "records.jsonl line 6: recordId is required" in m]
    assert "line 7: modelInput is required" in messages["no-input"]
    assert "unknown key(s) inputText" in messages["titan-body"] and "line 8" in messages["titan-body"]
    assert "longer than the model's context" in messages["too-long"]
    assert "temperature must be a number between 0.0 and 1.0" in messages["hot"]

    manifest = json.loads((folder / "manifest.json.out").read_text())
    assert manifest == {"totalRecordCount": 12, "processedRecordCount": 12, "successRecordCount": 6, "errorRecordCount": 6,
                        "inputTokenCount": sum(o["modelOutput"]["prompt_token_count"] for o in outputs.values()),
                        "outputTokenCount": sum(o["modelOutput"]["generation_token_count"] for o in outputs.values())}


def test_a_folder_of_files_with_both_body_families_and_a_converse_job(server, bedrock, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"recordId": f"a{i}", "modelInput": llama(f"Say {i}")} for i in range(3)])
    write_jsonl(tmp_path / "in" / "nested" / "b.jsonl",
                [{"recordId": f"b{i}", "modelInput": {"inputText": f"User: count to {i}\nBot:", "textGenerationConfig": {"maxTokenCount": 5}}}
                 for i in range(3)])
    (tmp_path / "in" / "notes.txt").write_text("not an input file: only .jsonl files are read")
    arn = create(bedrock, "folder", str(tmp_path / "in") + "/", str(tmp_path / "out"))
    converse = [{"recordId": f"c{i}", "modelInput": {"messages": [{"role": "user", "content": [{"text": f"Hello {i}"}]}],
                                                   "system": [{"text": "Be brief."}], "inferenceConfig": {"maxTokens": 5, "temperature": 0}}}
                for i in range(4)]
    converse_arn = create(bedrock, "converse", str(write_jsonl(tmp_path / "chat.jsonl", converse)), str(tmp_path / "out"),
                          modelInvocationType="Converse")

    job = wait(bedrock, arn)
    assert job["status"] == "Completed" and job["successRecordCount"] == 6, job
    folder = tmp_path / "out" / arn.rsplit("/", 1)[-1]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
        ["a.jsonl.out", "manifest.json.out", "nested/b.jsonl.out"]
    assert all("generation" in line["modelOutput"] for line in out_lines(folder / "a.jsonl.out"))
    titan = out_lines(folder / "nested" / "b.jsonl.out")
    assert [line["recordId"] for line in titan] == ["b0", "b1", "b2"]  # input order
    assert all(line["modelOutput"]["results"][0]["tokenCount"] <= 5 for line in titan)

    job = wait(bedrock, converse_arn)
    assert job["status"] == "Completed" and job["modelInvocationType"] == "Converse", job
    for line in out_lines(tmp_path / "out" / converse_arn.rsplit("/", 1)[-1] / "chat.jsonl.out"):
        output = line["modelOutput"]
        assert output["output"]["message"]["role"] == "assistant" and output["stopReason"] in ("end_turn", "max_tokens")
        assert output["usage"]["outputTokens"] <= 5
    listed = bedrock.list_model_invocation_jobs(nameContains="conv")["invocationJobSummaries"]
    assert [j["jobArn"] for j in listed] == [converse_arn]
    assert "up to 4 at once" in job_log(server, converse_arn)  # all its records were in the worker together


def test_custom_models_deployments_and_provisioned_models_are_loaded_by_the_job(server, bedrock, tiny_model_dir, tmp_path):
    """A custom model is served from its own spec in the job's worker (its adapter applied: the same greedy answer as
    InvokeModel through a deployment, not the base's); a deployment or provisioned model loads the model it serves."""
    from tests.test_custom_model_deployments import adapter  # a real PEFT adapter with weights far from zero

    settings = load_settings(home=server.home, database_url="")
    job = CustomizationJobRow(
        job_id="batchadapt01", job_arn="arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tiny/batchadapt01",
        job_name="job-batchadapt01", custom_model_name="batch-tuned", role_arn=ROLE, base_model_id="tiny",
        base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tiny", customization_type="FINE_TUNING", hyperparameters={},
        training_data_uri="/data.jsonl", validation_data_uris=[], output_uri="/out", kms_key_id=None)
    custom = CustomModelRegistry(settings, open_database(settings.database_url)).register(
        job, artifact_dir=adapter(tiny_model_dir, tmp_path / "adapter", seed=3), artifact_kind="adapter",
        training_loss=None, validation_loss=None).model_arn
    deployment = bedrock.create_custom_model_deployment(modelDeploymentName="batch-tuned", modelArn=custom)["customModelDeploymentArn"]
    provisioned = bedrock.create_provisioned_model_throughput(provisionedModelName="batch-base", modelId="tiny", modelUnits=1)["provisionedModelArn"]
    body = llama("[INST] Where is room 507? [/INST]", tokens=8)
    runtime = server.client("bedrock-runtime")
    expected = {model: json.loads(runtime.invoke_model(modelId=model, body=json.dumps(body))["body"].read())["generation"]
                for model in (deployment, "tiny")}
    assert expected[deployment] != expected["tiny"]

    source = str(write_jsonl(tmp_path / "one.jsonl", [{"recordId": "q", "modelInput": body}]))
    arns = {model: create(bedrock, f"served-{i}", source, str(tmp_path / "out"), model=model)
            for i, model in enumerate((custom, deployment, provisioned))}  # queued: one slot, one after another
    for model, arn in arns.items():
        assert wait(bedrock, arn)["status"] == "Completed"
        line, = out_lines(tmp_path / "out" / arn.rsplit("/", 1)[-1] / "one.jsonl.out")
        assert line["modelOutput"]["generation"] == expected["tiny" if model == provisioned else deployment], model
    bedrock.delete_provisioned_model_throughput(provisionedModelId=provisioned)
    bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=deployment)


def test_create_refuses_what_it_can_check_naming_the_field(server, bedrock, tmp_path):
    def refused(**overrides) -> tuple[str, str]:
        args = {"name": "checked", "input_uri": str(write_jsonl(tmp_path / "ok.jsonl", [{"recordId": "1", "modelInput": llama("hi")}])),
                "output_uri": str(tmp_path / "out"), **overrides}
        with pytest.raises(ClientError) as exc:
            create(bedrock, args.pop("name"), args.pop("input_uri"), args.pop("output_uri"), **args)
        return error_of(exc)

    code, message = refused(input_uri=str(tmp_path / "missing.jsonl"))
    assert code == "ValidationException" and INPUT_FIELD in message and "missing.jsonl" in message
    (tmp_path / "prose.jsonl").write_text("Dear reader,\nthis is not JSONL.\n")
    code, message = refused(input_uri=str(tmp_path / "prose.jsonl"))
    assert code == "ValidationException" and INPUT_FIELD in message and "line 1 is not a JSON object" in message
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    code, message = refused(input_uri=str(tmp_path / "table.csv"))
    assert message.startswith(f"{INPUT_FIELD}: ") and "not a JSONL file" in message
    (tmp_path / "empty").mkdir()
    assert "nothing to read" in refused(input_uri=str(tmp_path / "empty") + "/")[1]
    assert refused(name="no spaces please")[0] == "ValidationException"
    assert refused(model="no-such-model")[0] == "ResourceNotFoundException"
    assert "timeoutDurationInHours must be between 24 and 168" in refused(timeoutDurationInHours=500)[1]
    assert "modelInvocationType must be one of" in refused(modelInvocationType="Embed")[1]

    source = str(write_jsonl(tmp_path / "one.jsonl", [{"recordId": "1", "modelInput": llama("hi")}]))
    token = "retry-0123456789"
    first = create(bedrock, "idempotent", source, str(tmp_path / "out"), clientRequestToken=token, tags=[{"key": "team", "value": "nlp"}])
    assert create(bedrock, "idempotent", source, str(tmp_path / "out"), clientRequestToken=token) == first  # a retry: same job
    with pytest.raises(ClientError) as exc:
        create(bedrock, "idempotent", source, str(tmp_path / "out"))
    assert error_of(exc)[0] == "ConflictException" and "jobName" in error_of(exc)[1]
    assert bedrock.list_tags_for_resource(resourceARN=first)["tags"] == [{"key": "team", "value": "nlp"}]
    bedrock.tag_resource(resourceARN=first, tags=[{"key": "stage", "value": "test"}])
    bedrock.untag_resource(resourceARN=first, tagKeys=["team"])
    assert bedrock.list_tags_for_resource(resourceARN=first)["tags"] == [{"key": "stage", "value": "test"}]
    job = wait(bedrock, first)
    assert job["status"] == "Completed" and job["clientRequestToken"] == token
    with pytest.raises(ClientError) as exc:
        bedrock.stop_model_invocation_job(jobIdentifier=first)
    assert error_of(exc)[0] == "ConflictException" and "Completed" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        bedrock.get_model_invocation_job(jobIdentifier="abcdefabcdef")
    assert error_of(exc)[0] == "ResourceNotFoundException"


def test_stop_keeps_what_finished(server, bedrock, tmp_path):
    records = [{"recordId": f"s{i}", "modelInput": llama(f"Tell a long story number {i}", tokens=200, temperature=1.0)} for i in range(600)]
    arn = create(bedrock, "stopped", str(write_jsonl(tmp_path / "long.jsonl", records)), str(tmp_path / "out"))
    wait(bedrock, arn, check=lambda job: job.get("processedRecordCount", 0) >= 8)
    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] in ("Stopping", "Stopped")
    job = wait(bedrock, arn, timeout=30)
    assert job["status"] == "Stopped", job
    assert 8 <= job["processedRecordCount"] < 600
    folder = tmp_path / "out" / arn.rsplit("/", 1)[-1]
    lines = out_lines(folder / "long.jsonl.out")
    assert len(lines) == job["processedRecordCount"] and all("modelOutput" in line for line in lines)
    assert json.loads((folder / "manifest.json.out").read_text())["processedRecordCount"] == len(lines)


def test_a_killed_job_resumes_without_redoing_finished_records(server, bedrock, tmp_path):
    """First its model worker is killed (the job starts another and goes on), then the job's whole process group."""
    total = 300
    records = [{"recordId": f"k{i}", "modelInput": llama(f"Describe item {i}", tokens=48, temperature=1.0)} for i in range(total)]
    arn = create(bedrock, "resumed", str(write_jsonl(tmp_path / "many.jsonl", records)), str(tmp_path / "out"))
    wait(bedrock, arn, check=lambda job: job.get("processedRecordCount", 0) >= 10)
    row = service(server.home).get(arn)
    worker, = psutil.Process(row.pid).children()
    worker.kill()  # as the out-of-memory killer would
    deadline = time.monotonic() + 30
    while "the model worker died" not in job_log(server, arn):
        assert time.monotonic() < deadline, job_log(server, arn)
        time.sleep(0.2)
    replaced = bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert replaced["status"] == "InProgress", replaced
    wait(bedrock, arn, check=lambda job: job.get("processedRecordCount", 0) >= replaced["processedRecordCount"] + 20)
    os.killpg(row.pid, signal.SIGKILL)  # the job and its worker, as a crash of the host would
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{row.pid}"):
        time.sleep(0.1)
    results = Path(row.work_dir) / "results" / "0.jsonl"
    before = {json.loads(line)["line"]: json.loads(line) for line in results.read_bytes().split(b"\n")[:-1]}  # a torn tail is dropped
    assert replaced["processedRecordCount"] + 20 <= len(before) < total
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "InProgress"  # nobody noticed yet

    service(server.home)  # building a service reconciles, as a restarted server does: the job's process starts again
    job = wait(bedrock, arn)
    assert job["status"] == "Completed" and job["successRecordCount"] == total, job
    lines = out_lines(tmp_path / "out" / arn.rsplit("/", 1)[-1] / "many.jsonl.out")
    assert [line["recordId"] for line in lines] == [f"k{i}" for i in range(total)]  # each once, in input order
    for number, entry in before.items():  # temperature 1: a record sent again would have another generation
        assert lines[number - 1] == entry["result"]
    sent = re.findall(r"sent (\d+) records to the worker", job_log(server, arn))
    assert sent[-1] == str(total - len(before))  # the restarted process sent only the records not done


def test_200_dialogsum_records_complete_in_bedrocks_layout(server, bedrock, tmp_path):
    source = SHARED / "dialogsum"
    files = sorted(source.glob("*.jsonl")) if source.exists() else []
    if not files:
        pytest.skip(f"needs the DialogSum JSONL files in {source} (../shared/data or $TUNEFORGE_SHARED_DATA)")
    dialogues = []
    with open(files[0]) as handle:
        for line in handle:
            dialogues.append(json.loads(line)["dialogue"])
            if len(dialogues) == 200:
                break
    # cut to fit the tiny model's 256-token context; the job's shape is what is checked, not the summaries
    records = [{"recordId": f"DS{i:05d}", "modelInput": llama(f"[INST] Summarize this dialogue:\n{d[:200]} [/INST]", tokens=12)}
               for i, d in enumerate(dialogues)]
    arn = create(bedrock, "dialogsum", str(write_jsonl(tmp_path / "dialogsum.jsonl", records)), str(tmp_path / "out") + "/")
    job = wait(bedrock, arn, timeout=150)
    assert job["status"] == "Completed" and job["successRecordCount"] == len(records), job
    folder = tmp_path / "out" / arn.rsplit("/", 1)[-1]
    assert sorted(p.name for p in folder.iterdir()) == ["dialogsum.jsonl.out", "manifest.json.out"]
    lines = out_lines(folder / "dialogsum.jsonl.out")
    assert [line["recordId"] for line in lines] == [r["recordId"] for r in records]
    assert all(line["modelInput"] == r["modelInput"] for line, r in zip(lines, records))
    manifest = json.loads((folder / "manifest.json.out").read_text())
    assert manifest["successRecordCount"] == len(records) and manifest["outputTokenCount"] > 0


def test_the_cli_creates_follows_and_lists_jobs(server, tmp_path):
    source = write_jsonl(tmp_path / "cli.jsonl", [{"recordId": str(i), "modelInput": llama(f"Hi {i}")} for i in range(3)])
    env = {"TUNEFORGE_DATABASE_URL": ""}
    created = json.loads(tuneforge(server.home, "batch", "create", "from-cli", "--model", "tiny", "--input", str(source),
                                   "--output", str(tmp_path / "out"), "--json", env=env).stdout)
    followed = tuneforge(server.home, "batch", "get", "from-cli", "--watch", env=env).stdout
    assert "from-cli: Completed" in followed and "3/3" in followed
    detail = json.loads(tuneforge(server.home, "batch", "get", created["jobArn"], "--json", env=env).stdout)
    assert detail["status"] == "Completed" and detail["successRecordCount"] == 3
    assert "from-cli" in tuneforge(server.home, "batch", "list", env=env).stdout
    with pytest.raises(AssertionError, match="--input"):
        tuneforge(server.home, "batch", "create", "nope", "--model", "tiny", "--input", str(tmp_path / "absent.jsonl"), env=env)


def test_s3_input_folder_and_output(start_server, s3_env, tmp_path):
    from tuneforge import storage

    bucket = s3_env
    for name, count in (("in/part-1.jsonl", 3), ("in/part-2.jsonl", 2)):
        storage.write_bytes(f"{bucket}/{name}", "".join(json.dumps({"recordId": f"{name}-{i}", "modelInput": llama(f"Hi {i}")}) + "\n"
                                                      for i in range(count)).encode())
    server = start_server()
    bedrock = server.client("bedrock")
    with pytest.raises(ClientError) as exc:
        create(bedrock, "s3-missing", f"{bucket}/in/absent.jsonl", f"{bucket}/out/")
    assert error_of(exc)[0] == "ValidationException" and INPUT_FIELD in error_of(exc)[1]
    arn = create(bedrock, "s3-job", f"{bucket}/in/", f"{bucket}/out")
    job = wait(bedrock, arn)
    assert job["status"] == "Completed" and job["successRecordCount"] == 5, job
    job_id = arn.rsplit("/", 1)[-1]
    written = sorted(info.uri for info in storage.list_objects(f"{bucket}/out/{job_id}/"))
    assert written == [f"{bucket}/out/{job_id}/{name}" for name in ("manifest.json.out", "part-1.jsonl.out", "part-2.jsonl.out")]
    lines = storage.read_bytes(f"{bucket}/out/{job_id}/part-2.jsonl.out").decode().splitlines()
    assert [json.loads(line)["recordId"] for line in lines] == ["in/part-2.jsonl-0", "in/part-2.jsonl-1"]
    assert json.loads(storage.read_bytes(f"{bucket}/out/{job_id}/manifest.json.out"))["successRecordCount"] == 5


# ---- without a server: reconcile, the queue's timeout, the results log ---------------------------------------------
DEAD_PID = 2**22 + 12345  # above Linux's default pid_max: no process has it


def add_row(batch: BatchService, tmp_path: Path, name: str, status: str, **values) -> BatchJobRow:
    now = utcnow()
    job_id = f"{name[:8]:0<8}0000"[:12]
    row = BatchJobRow(
        job_id=job_id, job_arn=f"arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/{job_id}", job_name=name,
        role_arn=ROLE, model_id="tiny", invocation_type="InvokeModel", input_config={"s3Uri": str(tmp_path / "in.jsonl")},
        output_config={"s3Uri": str(tmp_path / "out")}, timeout_hours=24, expires_at=now + timedelta(hours=24),
        status=status, counts={}, progress={}, work_dir=str(tmp_path / "batch" / job_id), pid=DEAD_PID, pid_started_at=1.0,
        host=None, heartbeat_at=now - timedelta(minutes=5), attempts=MAX_ATTEMPTS, created_at=now, updated_at=now)
    for key, value in values.items():
        setattr(row, key, value)
    with session_scope(batch.sessions) as session:
        session.add(row)
    return batch.get(job_id)


def test_reconcile_closes_jobs_whose_process_is_gone(home, tmp_path, tiny_model_dir):
    Catalog(load_settings(), open_database(load_settings().database_url)).add("tiny", str(tiny_model_dir))
    batch = service(home)
    write_jsonl(tmp_path / "in.jsonl", [{"recordId": "a", "modelInput": llama("hi")}])
    stopping = add_row(batch, tmp_path, "stopping", "Stopping")
    crashed = add_row(batch, tmp_path, "crashed", "InProgress")  # restarted MAX_ATTEMPTS times already
    assert sorted(batch.reconcile()) == sorted([stopping.job_id, crashed.job_id])
    assert batch.get(stopping.job_id).status == "Stopped"
    failed = batch.get(crashed.job_id)
    assert failed.status == "Failed" and "ended unexpectedly 3 times" in failed.message and failed.end_time is not None
    with pytest.raises(Conflict, match="is Failed; it cannot become Stopping"):
        batch.stop(crashed.job_id)


def test_a_job_still_queued_when_its_timeout_runs_out_expires(home, tmp_path, tiny_model_dir):
    Catalog(load_settings(), open_database(load_settings().database_url)).add("tiny", str(tiny_model_dir))
    batch = service(home)
    write_jsonl(tmp_path / "in.jsonl", [{"recordId": "a", "modelInput": llama("hi")}])
    row = add_row(batch, tmp_path, "late", "Submitted", attempts=1, pid=None, expires_at=utcnow() - timedelta(seconds=1))
    batch._launch(row)  # its process validates, is Scheduled, and finds its time gone before a slot
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and batch.get(row.job_id).status not in ENDED:
        time.sleep(0.2)
    ended = batch.get(row.job_id)
    assert ended.status == "Expired" and "timeoutDurationInHours (24)" in ended.message, ended.message


def test_the_results_log_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "results" / "0.jsonl"
    log = ResultLog(path)
    log.add(3, {"recordId": "c"}, ok=True, input_tokens=2, output_tokens=5)
    log.add(1, {"recordId": "a"}, ok=False)
    log.close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"line": 2, "ok": tr')  # the process died writing record 2
    again = ResultLog(path)
    assert sorted(again.done) == [1, 3] and path.read_bytes() == whole
    assert counts([again], 4) == {"totalRecordCount": 4, "processedRecordCount": 2, "successRecordCount": 1,
                                  "errorRecordCount": 1, "inputTokenCount": 2, "outputTokenCount": 5}
    again.close()
