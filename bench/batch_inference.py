"""Batch inference vs the same records sent one by one through InvokeModel, same run, same server.

    python bench/batch_inference.py                                  # 500 records, 32 tokens each (several minutes)
    python bench/batch_inference.py --records 100 --max-tokens 16
    python bench/batch_inference.py --records 8 --max-tokens 4       # smoke run (CI)

Workload: the catalog's default model (SmolLM2-135M-Instruct, materialized the product way) behind a real
`tuneforge serve --no-auth` on a fresh TUNEFORGE_HOME with TUNEFORGE_MAX_BATCH_SIZE=--batch. `--records` distinct
Llama 2 bodies (greedy, max_gen_len=--max-tokens; a model may stop early at its end token, and both sides send the
same bodies, so both produce about the same tokens).
(a) sequential: boto3 InvokeModel, one record after another, after one warm-up call that loads the model in the
    server's pool (not timed): what a client without batch inference does.
(b) batch: CreateModelInvocationJob on a JSONL file of the same records, polled with GetModelInvocationJob until it
    ends. Its wall time is end to end: the job's process starting, its own worker loading the model, inference and
    writing the output. The job's own inference time (model loaded, first record sent to last one done) is also
    shown, with its ratio.
Prints output tokens, wall time and aggregate output tokens/s for each, and the ratios. Other load on the machine
skews both sides: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers", "botocore")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.api_server import Server  # noqa: E402  (the tests' real-server harness)
from tuneforge.catalog.builtin import DEFAULT_MODEL_ID  # noqa: E402

TOPICS = ["a hotel check-in", "a late checkout", "a currency conversion", "an order book", "a limit order",
          "a retrieval pipeline", "a summary of a meeting", "a polite complaint reply", "a room upgrade", "a market maker"]


def records(count: int, max_tokens: int) -> list[dict]:
    return [{"recordId": f"REC{i:06d}", "modelInput": {
        "prompt": f"[INST] Request {i}: explain {TOPICS[i % len(TOPICS)]} in two sentences. [/INST]",
        "max_gen_len": max_tokens, "temperature": 0}} for i in range(count)]


def sequential(runtime, batch: list[dict]) -> tuple[float, int]:
    tokens = 0
    started = time.perf_counter()
    for record in batch:
        reply = json.loads(runtime.invoke_model(modelId=DEFAULT_MODEL_ID, body=json.dumps(record["modelInput"]))["body"].read())
        tokens += reply["generation_token_count"]
    return time.perf_counter() - started, tokens


def batch_job(bedrock, home: Path, batch: list[dict], work: Path) -> tuple[float, int, float, dict]:
    source = work / "records.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in batch))
    started = time.perf_counter()
    arn = bedrock.create_model_invocation_job(
        jobName=f"bench-{time.time_ns()}", roleArn="arn:aws:iam::123456789012:role/bench", modelId=DEFAULT_MODEL_ID,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": str(source)}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": str(work / "out") + "/"}})["jobArn"]
    while True:
        job = bedrock.get_model_invocation_job(jobIdentifier=arn)
        if job["status"] in ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"):
            break
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if job["status"] != "Completed":
        sys.exit(f"the batch job ended {job['status']}: {job.get('message')}")
    job_id = arn.rsplit("/", 1)[-1]
    manifest = json.loads((work / "out" / job_id / "manifest.json.out").read_text())
    # the job's own timing (GetModelInvocationJob has no member for it): the row its process wrote
    from tuneforge.batch.service import BatchService  # noqa: E402  (imported late: it reads the server's home)
    from tuneforge.catalog.service import Catalog
    from tuneforge.db import open_database
    from tuneforge.models.resolve import ModelResolver
    from tuneforge.registry.service import CustomModelRegistry
    from tuneforge.serving.custom_deployments import CustomModelDeployments
    from tuneforge.settings import load_settings

    settings = load_settings(home=home, database_url="")
    sessions = open_database(settings.database_url)
    models = ModelResolver(settings, sessions, Catalog(settings, sessions), CustomModelRegistry(settings, sessions))
    progress = BatchService(settings, sessions, models, CustomModelDeployments(settings, sessions, models), reconcile=False).get(arn).progress
    return wall, manifest["outputTokenCount"], progress["inferSeconds"], progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8, help="TUNEFORGE_MAX_BATCH_SIZE of the server and the job's worker")
    # on a fresh TUNEFORGE_HOME (a temporary one unless it is set) the first call materializes the model
    args = parser.parse_args()

    batch = records(args.records, args.max_tokens)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = Path(tmp)
        # TUNEFORGE_HOME when set (the smoke test's keeps the default model materialized across benchmarks), else a fresh one
        home = Path(os.environ.get("TUNEFORGE_HOME") or work / "home").expanduser()
        home.mkdir(parents=True, exist_ok=True)
        env = {"TUNEFORGE_DATABASE_URL": "", "TUNEFORGE_MAX_BATCH_SIZE": str(args.batch), "HF_HUB_OFFLINE": "1"}
        load_before = os.getloadavg()
        server = Server(home, env=env, no_auth=True)
        try:
            runtime = server.client("bedrock-runtime", read_timeout=600)
            bedrock = server.client("bedrock")
            sequential(runtime, batch[:1])  # warm-up: loads (and on a fresh home materializes) the model
            seq_wall, seq_tokens = sequential(runtime, batch)
            job_wall, job_tokens, infer_seconds, progress = batch_job(bedrock, home, batch, work)
        finally:
            server.stop()
        load_after = os.getloadavg()

    print(f"model {DEFAULT_MODEL_ID}, {args.records} records, max_gen_len {args.max_tokens}, greedy, "
          f"TUNEFORGE_MAX_BATCH_SIZE {args.batch} (the job kept up to {progress['peakInFlight']} records in flight)")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs)")
    rows = {"InvokeModel one by one": (seq_wall, seq_tokens),
            "batch job, end to end": (job_wall, job_tokens),
            "batch job, inference only": (infer_seconds, job_tokens)}
    print(f"{'':28}{'wall s':>9}{'tokens':>8}{'tokens/s':>10}")
    for name, (wall, tokens) in rows.items():
        print(f"{name:28}{wall:9.1f}{tokens:8d}{tokens / wall:10.1f}")
    base = seq_tokens / seq_wall
    print(f"throughput ratio (batch job end to end / one by one): {job_tokens / job_wall / base:.2f}x")
    print(f"throughput ratio (batch job inference / one by one): {job_tokens / infer_seconds / base:.2f}x")


if __name__ == "__main__":
    main()
