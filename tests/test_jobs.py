"""Customization jobs end to end: real job processes, a real database, real files and S3, a tiny Llama."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.api_server import stop_unfinished
from tuneforge import storage
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.errors import Conflict, InvalidInput, NotFound
from tuneforge.jobs.layout import read_csv
from tuneforge.training.metrics import TRAINING_CSV, VALIDATION_CSV
from tuneforge.jobs.service import JobService
from tuneforge.jobs.spec import JobRequest
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.settings import load_settings

TIMEOUT = 180  # seconds a tiny job may take on a busy 2-core CI machine

pytestmark = pytest.mark.slow  # real job processes: each loads torch and trains


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model_dir):
    """Settings, services and a registered tiny base model, on SQLite (the jobs run as subprocesses)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(home))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    settings = load_settings()
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny", str(tiny_model_dir))
    jobs = JobService(settings, sessions, catalog)
    yield settings, jobs, CustomModelRegistry(settings, sessions)
    stop_unfinished(jobs)


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def summaries(n: int) -> list[dict]:
    return [
        {"prompt": f"Summarize the conversation.\n\n#Person1#: Room {500 + i}, please.\n#Person2#: Here is your key.\n\nSummary: ",
         "completion": f"A guest gets the key to room {500 + i}."}
        for i in range(n)
    ]


def request(tmp_path: Path, name: str, **overrides) -> JobRequest:
    fields = dict(
        job_name=name, custom_model_name=f"{name}-model", base_model_identifier="tiny", output_uri=str(tmp_path / "out"),
        hyperparameters={"epochCount": "2", "batchSize": "4", "learningRate": "0.001", "maxSequenceLength": "128"},
    )
    fields.update(overrides)
    if "training_data_uri" not in fields:
        fields["training_data_uri"] = write_jsonl(tmp_path / f"default-{name}.jsonl", summaries(16))
    return JobRequest(**fields)


def wait(jobs: JobService, name: str, statuses=("Completed", "Failed", "Stopped"), timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = jobs.get(name)
        if row.status in statuses:
            return row
        jobs.reconcile()
        time.sleep(0.5)
    raise AssertionError(f"job {name} still {jobs.get(name).status} after {timeout}s: {jobs.get(name).progress}")


def test_request_validation_reports_every_field():
    with pytest.raises(InvalidInput) as err:
        JobRequest(job_name="bad name!", custom_model_name="", base_model_identifier="tiny", training_data_uri="s3://",
                   output_uri="", role_arn="nope", customization_type="DISTILLING")
    for field in ("jobName", "customModelName", "roleArn", "customizationType", "trainingDataConfig.s3Uri", "outputDataConfig.s3Uri"):
        assert field in err.value.message


def test_create_refuses_bad_requests_and_stores_nothing(env, tmp_path):
    _, jobs, _ = env
    with pytest.raises(InvalidInput) as err:
        jobs.create(request(tmp_path, "hp", hyperparameters={"epochCount": "zero", "bogus": "1"}))
    assert "epochCount" in err.value.message and "bogus" in err.value.message
    with pytest.raises(NotFound):
        jobs.create(request(tmp_path, "nobase", base_model_identifier="no-such-model"))
    with pytest.raises(InvalidInput, match="supports no customization"):
        jobs.create(request(tmp_path, "embed", base_model_identifier="sentence-transformers.all-minilm-l6-v2"))
    assert jobs.list().jobs == []


def test_fine_tuning_job_completes_registers_a_model_and_writes_metrics(env, tmp_path):
    settings, jobs, registry = env
    validation = write_jsonl(tmp_path / "val.jsonl", summaries(4))
    row = jobs.create(request(tmp_path, "ft", validation_data_uris=(validation,), client_request_token="tok-1"))
    assert row.status == "InProgress" and row.job_arn.endswith(f"model-customization-job/tiny/{row.job_id}")
    assert jobs.create(request(tmp_path, "ft", validation_data_uris=(validation,), client_request_token="tok-1")).job_id == row.job_id
    with pytest.raises(Conflict):
        jobs.create(request(tmp_path, "ft"))  # same name, no token

    done = wait(jobs, "ft")
    assert done.status == "Completed", done.failure_message
    assert {d["status"] for d in done.status_details.values()} == {"Completed"}
    assert done.created_at < done.end_time <= done.updated_at

    out = tmp_path / "out" / f"model-customization-job-{row.job_id}"
    training = read_csv(out / TRAINING_CSV)
    assert [int(r["step_number"]) for r in training] == list(range(8))  # 16 records / batch 4 x 2 epochs
    assert set(training[0]) == {"step_number", "epoch_number", "training_loss", "perplexity"}
    validation = read_csv(out / VALIDATION_CSV)
    assert len(validation) == 2  # one per epoch
    assert float(training[-1]["training_loss"]) < float(training[0]["training_loss"])
    # the job reports the last step's loss and the last epoch's validation loss (the files keep 6 decimals)
    assert done.training_loss == pytest.approx(float(training[-1]["training_loss"]), abs=1e-6)
    assert done.validation_loss == pytest.approx(float(validation[-1]["validation_loss"]), abs=1e-6)

    model = registry.get("ft-model")
    assert done.output_model_arn == model.model_arn and model.model_status == "Active"
    assert (Path(model.artifact_dir) / "adapter_config.json").is_file()
    registry.delete(model.model_arn)
    assert not Path(model.artifact_dir).exists()
    with pytest.raises(NotFound):
        registry.get("ft-model")


def test_bad_data_fails_fast_with_line_numbers(env, tmp_path):
    _, jobs, _ = env
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\nnot json\n\n{"prompt": "a", "completion": 3}\n')
    jobs.create(request(tmp_path, "bad", training_data_uri=str(bad)))
    done = wait(jobs, "bad")
    assert done.status == "Failed"
    assert done.status_details["validationDetails"]["status"] == "Failed"
    assert done.status_details["trainingDetails"]["status"] == "NotStarted"
    for needle in ("line 2", "line 3", "line 4", "line 5", "completion"):
        assert needle in done.failure_message


def test_outputs_to_s3(env, tmp_path, s3_env):
    _, jobs, _ = env
    storage.write_bytes(f"{s3_env}/data/train.jsonl", "".join(json.dumps(r) + "\n" for r in summaries(8)).encode())
    row = jobs.create(request(tmp_path, "s3job", training_data_uri=f"{s3_env}/data/train.jsonl", output_uri=f"{s3_env}/out/",
                              hyperparameters={"epochCount": "1", "batchSize": "4", "maxSequenceLength": "128"}))
    assert wait(jobs, "s3job").status == "Completed"
    keys = {o.uri for o in storage.list_objects(f"{s3_env}/out/")}
    assert f"{s3_env}/out/model-customization-job-{row.job_id}/{TRAINING_CSV}" in keys


def test_continued_pre_training_job(env, tmp_path):
    _, jobs, registry = env
    text = [{"input": "Exchange rules describe order types, auctions and trading halts. " * 8} for _ in range(6)]
    jobs.create(request(tmp_path, "cpt", customization_type="CONTINUED_PRE_TRAINING",
                        training_data_uri=write_jsonl(tmp_path / "cpt.jsonl", text)))
    done = wait(jobs, "cpt")
    assert done.status == "Completed", done.failure_message
    assert registry.get("cpt-model").customization_type == "CONTINUED_PRE_TRAINING"


def test_stop_ends_the_job_and_its_process_tree(env, tmp_path):
    _, jobs, _ = env
    long = {"epochCount": "10", "batchSize": "1", "maxSequenceLength": "128"}
    jobs.create(request(tmp_path, "long", training_data_uri=write_jsonl(tmp_path / "long.jsonl", summaries(200)), hyperparameters=long))
    deadline = time.monotonic() + TIMEOUT
    while jobs.get("long").status_details["trainingDetails"]["status"] != "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    pid = jobs.get("long").pid
    stopped = jobs.stop("long")  # how fast: bench/job_stop.py
    assert stopped.status == "Stopped"
    assert stopped.status_details["trainingDetails"]["status"] == "Stopped"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(Conflict):
        jobs.stop("long")


def test_a_killed_job_process_resumes_from_its_checkpoint(env, tmp_path):
    _, jobs, _ = env
    hp = {"epochCount": "3", "batchSize": "2", "maxSequenceLength": "128"}
    jobs.create(request(tmp_path, "crash", training_data_uri=write_jsonl(tmp_path / "crash.jsonl", summaries(40)), hyperparameters=hp))
    deadline = time.monotonic() + TIMEOUT
    while not list((Path(jobs.get("crash").work_dir) / "train" / "checkpoints").glob("step-*")):
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.2)
    os.killpg(jobs.get("crash").pid, signal.SIGKILL)  # as a host crash would
    time.sleep(0.5)
    assert jobs.reconcile() == [jobs.get("crash").job_id]
    done = wait(jobs, "crash")
    assert done.status == "Completed" and done.attempts == 2
    training = read_csv(tmp_path / "out" / f"model-customization-job-{done.job_id}" / TRAINING_CSV)
    assert [int(r["step_number"]) for r in training] == list(range(60))  # no step lost or repeated


def test_a_job_that_keeps_dying_is_failed_not_left_in_progress(env, tmp_path):
    settings, jobs, _ = env
    row = jobs.create(request(tmp_path, "doomed"))
    from sqlalchemy import update
    from tuneforge.db import session_scope
    from tuneforge.db.tables import CustomizationJobRow

    os.killpg(row.pid, signal.SIGKILL)
    time.sleep(0.3)
    with session_scope(jobs.sessions) as session:  # as if it had already been restarted twice
        session.execute(update(CustomizationJobRow).where(CustomizationJobRow.job_id == row.job_id).values(attempts=3))
    jobs.reconcile()
    failed = jobs.get("doomed")
    assert failed.status == "Failed" and "ended unexpectedly" in failed.failure_message and "job.log" in failed.failure_message


def test_jobs_queue_one_at_a_time(env, tmp_path):
    _, jobs, _ = env
    jobs.create(request(tmp_path, "first", training_data_uri=write_jsonl(tmp_path / "q1.jsonl", summaries(60)),
                        hyperparameters={"epochCount": "2", "batchSize": "1", "maxSequenceLength": "128"}))
    jobs.create(request(tmp_path, "second"))
    deadline = time.monotonic() + TIMEOUT
    seen_waiting = False
    while jobs.get("first").status == "InProgress":
        assert time.monotonic() < deadline
        if jobs.get("first").status_details["trainingDetails"]["status"] == "InProgress":
            second = jobs.get("second")
            assert second.status_details["validationDetails"]["status"] == "NotStarted"
            seen_waiting = True
        time.sleep(0.3)
    assert seen_waiting
    assert wait(jobs, "second").status == "Completed"


# ---- data that Bedrock accepts must train (issue: long records, missing objects) ------------------------------------
def test_missing_data_objects_are_refused_at_creation_naming_the_uri(env, tmp_path, s3_env):
    _, jobs, _ = env
    missing = str(tmp_path / "not-uploaded.jsonl")
    with pytest.raises(InvalidInput) as err:
        jobs.create(request(tmp_path, "nodata", training_data_uri=missing))
    assert err.value.field == "trainingDataConfig.s3Uri" and missing in err.value.message
    with pytest.raises(InvalidInput) as err:
        jobs.create(request(tmp_path, "noval", validation_data_uris=(f"{s3_env}/data/missing-val.jsonl",)))
    assert err.value.field == "validationDataConfig.validators[0].s3Uri" and "missing-val.jsonl" in err.value.message
    with pytest.raises(InvalidInput) as err:
        jobs.create(request(tmp_path, "nobucket", training_data_uri="s3://no-such-bucket-here/train.jsonl"))
    assert err.value.field == "trainingDataConfig.s3Uri" and "no-such-bucket-here" in err.value.message
    assert jobs.list().jobs == []  # nothing was created, nothing started


def test_continued_pre_training_splits_records_longer_than_a_row_and_counts_tokens(env, tmp_path):
    _, jobs, _ = env
    # The tiny model's context is 256, so rows are 256 tokens: each of these pages is several rows long.
    pages = [{"input": f"Page {i}. " + "Exchange rules describe order types, auctions and trading halts. " * 40} for i in range(3)]
    jobs.create(request(tmp_path, "pages", customization_type="CONTINUED_PRE_TRAINING",
                        training_data_uri=write_jsonl(tmp_path / "pages.jsonl", pages),
                        hyperparameters={"epochCount": "2", "batchSize": "2", "learningRate": "0.001"}))
    done = wait(jobs, "pages")
    assert done.status == "Completed", done.failure_message
    progress = done.progress
    assert progress["windowTokens"] == 256 and progress["splitRecords"] == 3 and progress["splitWindows"] >= 6
    # every token of every page, each epoch, was trained: the job counts tokens, not records
    assert progress["tokensTrained"] == progress["trainingTokens"] > 3 * 256 * 2
    steps = int(read_csv(tmp_path / "out" / f"model-customization-job-{done.job_id}" / TRAINING_CSV)[-1]["step_number"]) + 1
    rows = math.ceil(progress["trainingTokens"] / 2 / 256)  # an epoch's tokens packed into rows of 256
    assert progress["totalSteps"] == steps == 2 * math.ceil(rows / 2)  # 2 epochs of rows / batchSize 2


def test_a_fine_tuning_record_longer_than_the_context_is_refused_with_the_fix(env, tmp_path):
    _, jobs, _ = env
    long = {"prompt": "Summarize: " + "the guest checks in at the hotel. " * 60, "completion": "A guest checks in."}
    jobs.create(request(tmp_path, "toolong", training_data_uri=write_jsonl(tmp_path / "long.jsonl", summaries(3) + [long]),
                        hyperparameters={"epochCount": "1", "batchSize": "2"}))
    done = wait(jobs, "toolong")
    assert done.status == "Failed"
    assert "line 4: record is too long by" in done.failure_message
    assert "more than the model's context of 256 tokens" in done.failure_message
    assert "maxSequenceLength" in done.failure_message and "longer context" in done.failure_message


@pytest.mark.slow
def test_a_fine_tuning_record_of_2000_tokens_trains_on_the_default_model(env, tmp_path):
    from tuneforge.catalog.builtin import DEFAULT_MODEL_ID

    _, jobs, registry = env
    dialogue = "".join(f"#Person{1 + i % 2}#: Room {500 + i} is ready; the breakfast is served from seven until ten.\n"
                       for i in range(110))
    record = {"prompt": f"Summarize the conversation.\n\n{dialogue}\nSummary: ", "completion": "Rooms and breakfast times."}
    data = write_jsonl(tmp_path / "long-dialogue.jsonl", [record])
    jobs.create(request(tmp_path, "long2k", base_model_identifier=DEFAULT_MODEL_ID, training_data_uri=data,
                        hyperparameters={"epochCount": "1", "batchSize": "1"}))
    done = wait(jobs, "long2k", timeout=900)
    assert done.status == "Completed", done.failure_message
    assert done.progress["maxSequenceLength"] >= 2000  # grew from 1,024 to fit the record whole
    assert done.progress["tokensTrained"] == done.progress["maxSequenceLength"]  # one record, one step, nothing cut
    assert registry.get("long2k-model").model_status == "Active"


def test_a_stopped_job_is_never_restarted(env, tmp_path):
    """stop() used to hand the ended job to crash recovery, which relaunched it (attempt 2) to train after all."""
    _, jobs, _ = env
    jobs.create(request(tmp_path, "running", training_data_uri=write_jsonl(tmp_path / "run.jsonl", summaries(200)),
                        hyperparameters={"epochCount": "10", "batchSize": "1", "maxSequenceLength": "128"}))
    jobs.create(request(tmp_path, "waiting"))  # queued behind the first
    deadline = time.monotonic() + TIMEOUT
    while jobs.get("running").status_details["trainingDetails"]["status"] != "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    ids = {jobs.get(name).job_id for name in ("running", "waiting")}
    for name in ("waiting", "running"):
        stopped = jobs.stop(name)
        assert (stopped.status, stopped.attempts) == ("Stopped", 1)
    jobs.reconcile()
    assert {(jobs.get(name).status, jobs.get(name).attempts) for name in ("running", "waiting")} == {("Stopped", 1)}
    left = [p for p in psutil.process_iter(["cmdline"]) if "tuneforge.jobs.process" in (p.info["cmdline"] or [])
            and ids & set(p.info["cmdline"] or [])]
    assert left == [], "a stopped job's process is still running"
