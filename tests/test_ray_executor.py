"""Customization jobs as Ray Jobs on a real local Ray cluster (tests/fixtures_ray.py), through TUNEFORGE_EXECUTOR=ray's
RayExecutor: a job completes, a stop reaches it, a killed driver is resubmitted by reconcile and resumes, and a retried
submission never runs twice. The process asking (this test, as a server would) imports no ray."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.api_server import stop_unfinished
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.errors import InvalidInput, Unavailable
from tuneforge.jobs.service import JobService
from tuneforge.jobs.spec import JobRequest
from tuneforge.processes.executors import executor_for
from tuneforge.processes.local import SOURCE_ROOT
from tuneforge.processes.ray import RayExecutor
from tuneforge.settings import load_settings

pytestmark = pytest.mark.slow  # a Ray cluster and real job processes
TIMEOUT = 240


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model_dir, ray_cluster):
    home = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(home))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("TUNEFORGE_EXECUTOR", "ray")
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
    monkeypatch.setenv("TUNEFORGE_RAY_PYTHON", sys.executable)  # the cluster's nodes run this environment
    settings = load_settings()
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny", str(tiny_model_dir))
    jobs = JobService(settings, sessions, catalog)
    assert isinstance(jobs.executor, RayExecutor)
    yield jobs
    stop_unfinished(jobs)


def ray_jobs(url: str) -> dict[str, dict]:
    with urllib.request.urlopen(f"{url}/api/jobs/", timeout=10) as reply:
        return {j["submission_id"]: j for j in json.loads(reply.read()) if j.get("submission_id")}


def ray_job(url: str, submission: str, *, until=("SUCCEEDED", "FAILED", "STOPPED"), timeout: float = 60) -> dict:
    """The cluster's record of a submission once it has ended (the job's row ends a moment before its process exits)."""
    deadline = time.monotonic() + timeout
    while (job := ray_jobs(url)[submission])["status"] not in until:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def request(tmp_path: Path, name: str, epochs: int = 2, records: int = 16) -> JobRequest:
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Room {500 + i}? ", "completion": f"Floor {i % 7}."}) + "\n" for i in range(records)))
    return JobRequest(job_name=name, custom_model_name=f"{name}-model", base_model_identifier="tiny", training_data_uri=str(data),
                      output_uri=str(tmp_path / "out"),
                      hyperparameters={"epochCount": str(epochs), "batchSize": "2", "learningRate": "0.001", "maxSequenceLength": "64"})


def wait(jobs: JobService, name: str, until, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = jobs.get(name)
        if until(row):
            return row
        jobs.reconcile()
        time.sleep(0.5)
    raise AssertionError(f"job {name}: {jobs.get(name).status} {jobs.get(name).progress} after {timeout}s")


def test_a_job_runs_on_the_cluster_and_completes(env, tmp_path, ray_cluster):
    row = env.create(request(tmp_path, "on-ray"))
    done = wait(env, "on-ray", lambda r: r.status in ("Completed", "Failed", "Stopped"))
    assert done.status == "Completed", done.failure_message
    assert done.host == f"ray:tuneforge-{row.job_id}-1"  # the run the cluster knows it by
    submitted = ray_job(ray_cluster, f"tuneforge-{row.job_id}-1")
    assert submitted["status"] == "SUCCEEDED" and submitted["metadata"]["tuneforge.module"] == "tuneforge.jobs.process"
    assert (Path(done.work_dir) / "job.log").stat().st_size > 0  # its output, where a local job's goes
    assert env.executor.is_alive(done.pid, done.pid_started_at, done.host) is False


def test_stop_reaches_the_job_through_the_cluster(env, tmp_path, ray_cluster):
    row = env.create(request(tmp_path, "stop-ray", epochs=10, records=64))
    wait(env, "stop-ray", lambda r: (r.progress or {}).get("phase") == "training" and (r.progress or {}).get("step", 0) >= 1)
    stopped = env.stop("stop-ray")
    assert stopped.status == "Stopped", (stopped.status, stopped.failure_message)
    assert ray_job(ray_cluster, f"tuneforge-{row.job_id}-1")["status"] in ("STOPPED", "SUCCEEDED")
    # it checkpointed before it exited: the stop came as SIGTERM, with the stop grace to finish its step
    assert list((Path(stopped.work_dir) / "train" / "checkpoints").glob("step-*"))


def test_a_killed_driver_is_resubmitted_and_resumes(env, tmp_path, ray_cluster):
    row = env.create(request(tmp_path, "kill-ray", epochs=10, records=64))  # 320 steps: long enough to be killed mid-run
    running = wait(env, "kill-ray", lambda r: (r.progress or {}).get("step", 0) >= 40)  # past the first epoch's checkpoint
    assert running.status == "InProgress" and running.progress["step"] < running.progress["totalSteps"]
    os.kill(running.pid, signal.SIGKILL)  # the driver dies as with its node
    again = wait(env, "kill-ray", lambda r: r.attempts == 2 and r.host == f"ray:tuneforge-{row.job_id}-2")
    assert ray_job(ray_cluster, f"tuneforge-{row.job_id}-1")["status"] == "FAILED"
    done = wait(env, "kill-ray", lambda r: r.status in ("Completed", "Failed", "Stopped"))
    assert done.status == "Completed", done.failure_message
    assert done.attempts == again.attempts == 2
    assert "resum" in (Path(done.work_dir) / "job.log").read_text().lower() or done.progress["step"] == done.progress["totalSteps"]


def test_a_retried_submission_runs_once(ray_cluster, tmp_path):
    executor = RayExecutor(ray_cluster, python=sys.executable, env={"PYTHONPATH": str(SOURCE_ROOT)})
    secret = {"TUNEFORGE_DATABASE_URL": "postgresql://tuneforge:s3cret@db/tuneforge", "AWS_SECRET_ACCESS_KEY": "k3y"}
    first = executor.start("tuneforge.processes.environment", "x", tmp_path / "w", run_id="retry-test-1", env=secret)
    second = executor.start("tuneforge.processes.environment", "x", tmp_path / "w", run_id="retry-test-1")
    assert first.host == second.host == "ray:tuneforge-retry-test-1"
    assert sum(1 for sid in ray_jobs(ray_cluster) if sid == "tuneforge-retry-test-1") == 1
    shown = json.dumps(ray_jobs(ray_cluster)["tuneforge-retry-test-1"])  # what the dashboard shows of the job
    assert "s3cret" not in shown and "k3y" not in shown and "TUNEFORGE_RAY_SUBMISSION_ID" in shown


def test_a_wrong_address_is_refused_with_the_fix(tmp_path, monkeypatch):
    with pytest.raises(InvalidInput) as err:
        RayExecutor("127.0.0.1:6379")
    assert "http://HEAD:8265" in err.value.message
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path))
    monkeypatch.setenv("TUNEFORGE_EXECUTOR", "ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(InvalidInput) as err:
        load_settings()
    assert "RAY_ADDRESS" in err.value.message
    nobody = RayExecutor("http://127.0.0.1:9")  # nothing listens
    with pytest.raises(Unavailable) as err:
        nobody.start("tuneforge.processes.environment", "x", tmp_path, run_id="never")
    assert "ray start --head" in err.value.message
    assert nobody.is_alive(0, None, "ray:tuneforge-never") is None  # cannot tell: the heartbeat decides
