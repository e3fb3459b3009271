"""How long does stopping a training job take? JobService.stop() on a job mid-training, against ending a bare
process of the same kind (torch imported, nothing to save), same run.

    python bench/job_stop.py [--repeats 3]
    python bench/job_stop.py --repeats 1                   # smoke run (CI)

tests/test_jobs.py checks that a stopped job ends Stopped with its whole process tree gone; how fast is measured
here. Each repeat starts a long fine-tuning job on the tiny random Llama of the tests (tests/tiny_model.py;
200 records, batch 1, 10 epochs: it never finishes on its own), waits until training has taken a few steps, and
times `stop()`: SIGTERM, the trainer checkpoints and returns, the job records Stopped; it is killed after
STOP_GRACE_SECONDS otherwise. Baseline: a detached `python -c "import torch; ..."` process, SIGTERMed and reaped.
Printed: the median and the ratio, and the job's own seconds per step for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers", "peft")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.tiny_model import build_tiny_llama  # noqa: E402  (the tests' tiny model)
from tuneforge.catalog.service import Catalog  # noqa: E402
from tuneforge.db import open_database  # noqa: E402
from tuneforge.jobs.service import STOP_GRACE_SECONDS, JobService  # noqa: E402
from tuneforge.jobs.spec import JobRequest  # noqa: E402
from tuneforge.settings import load_settings  # noqa: E402

STEPS_BEFORE_STOP = 3  # mid-training: the model is loaded and steps are running


def stop_once(jobs: JobService, root: Path, name: str) -> tuple[float, float]:
    """(seconds stop() took, seconds per training step) of one job."""
    data = root / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Summarize: room {500 + i}, please.\n\nSummary: ",
                                        "completion": f"A guest gets room {500 + i}."}) + "\n" for i in range(200)))
    jobs.create(JobRequest(job_name=name, custom_model_name=f"{name}-model", base_model_identifier="tiny",
                           training_data_uri=str(data), output_uri=str(root / "out"),
                           hyperparameters={"epochCount": "10", "batchSize": "1", "maxSequenceLength": "128"}))
    deadline = time.monotonic() + 300
    while (jobs.get(name).progress or {}).get("step", 0) < STEPS_BEFORE_STOP:
        if jobs.get(name).status != "InProgress" or time.monotonic() > deadline:
            raise RuntimeError(f"job {name} did not start training: {jobs.get(name).status} {jobs.get(name).failure_message}")
        time.sleep(0.2)
    # progress reaches the database once per heartbeat (2 s): time steps between two fresh ones >= 6 s apart
    t1, s1 = next_heartbeat(jobs, name, after=None)
    t2, s2 = next_heartbeat(jobs, name, after=t1 + 6)
    started = time.perf_counter()
    stopped = jobs.stop(name)
    took = time.perf_counter() - started
    if stopped.status != "Stopped":
        raise RuntimeError(f"job {name} ended {stopped.status}")
    return took, (t2 - t1) / max(s2 - s1, 1)


def next_heartbeat(jobs: JobService, name: str, after: float | None) -> tuple[float, int]:
    """(when, step) of the first progress change seen after `after` (monotonic seconds), polled every 0.1 s."""
    while after is not None and time.monotonic() < after:
        time.sleep(0.1)
    step = jobs.get(name).progress["step"]
    while (now := jobs.get(name).progress["step"]) == step:
        time.sleep(0.1)
    return time.monotonic(), now


def bare_process_end() -> float:
    """SIGTERM to reaped, for a detached python that has imported torch (the floor of ending a job process)."""
    proc = subprocess.Popen([sys.executable, "-c", "import torch, time; print('ready', flush=True); time.sleep(600)"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    proc.stdout.readline()  # imported
    started = time.perf_counter()
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings(home=root / "home", database_url="")
        sessions = open_database(settings.database_url)
        catalog = Catalog(settings, sessions)
        catalog.add("tiny", str(build_tiny_llama(root / "tiny")))
        jobs = JobService(settings, sessions, catalog)
        runs = [stop_once(jobs, root, f"stop-{i}") for i in range(args.repeats)]
        bare = statistics.median(bare_process_end() for _ in range(args.repeats))
    stop = statistics.median(took for took, _ in runs)
    step = statistics.median(s for _, s in runs)
    print(f"median of {args.repeats}; a job is killed after STOP_GRACE_SECONDS = {STOP_GRACE_SECONDS:.0f} s")
    print(f"  bare torch process, SIGTERM to reaped (baseline) {bare * 1000:8.1f} ms")
    print(f"  JobService.stop() mid-training                   {stop * 1000:8.1f} ms   ratio {stop / bare:6.1f}x"
          f"   (one training step: {step * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
