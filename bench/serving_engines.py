"""The built-in engine against vLLM on this machine: the same model, requests and worker protocol, same run.

    TUNEFORGE_VLLM_PYTHON=~/vllm-env/bin/python python bench/serving_engines.py              # default model
    TUNEFORGE_VLLM_PYTHON=... python bench/serving_engines.py --clients 1,8 --tokens 32
    python bench/serving_engines.py --model tiny --clients 1,4 --tokens 8 --requests-per-client 1   # smoke run (CI)

Each engine runs in a real worker process (tuneforge.serving.client.WorkerProcess; vLLM's with the Python of its
own environment, TUNEFORGE_VLLM_PYTHON, see the README's "Serving on vLLM"), float32, batch as wide as the most
clients. For every count of clients in --clients, each client streams --requests-per-client chat requests one
after another (greedy, exactly --tokens tokens: the end token is ignored). Prints aggregate output tokens/s, p50
and p95 time to first token and latency per engine, and the ratio vLLM / built-in. --model tiny builds the tests'
random Llama with a 32-wide head (vLLM's CPU kernels need 32 or more) instead of the default SmolLM2-135M.
Without vLLM the built-in side still runs and the ratio says what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.tiny_model import build_tiny_llama  # noqa: E402  (the tests' tiny model)
from tuneforge.catalog.builtin import BUILTIN_MODELS, DEFAULT_MODEL_ID, package_path  # noqa: E402
from tuneforge.inference.materialize import materialize_gguf  # noqa: E402
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams  # noqa: E402
from tuneforge.inference.spec import WorkerSpec  # noqa: E402
from tuneforge.serving.client import WorkerProcess  # noqa: E402
from tuneforge.settings import load_settings  # noqa: E402

TOPICS = ["a hotel check-in", "an opening auction", "a limit order", "a late checkout", "a trading halt",
          "a market maker", "a room upgrade", "a knowledge base"]


def vllm_python() -> str | None:
    python = os.environ.get("TUNEFORGE_VLLM_PYTHON", "")
    if python and subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode == 0:
        return python
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def request(i: int, tokens: int) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", f"Request {i}: explain {TOPICS[i % len(TOPICS)]} step by step."),),
                             params=SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True))


async def one(worker: WorkerProcess, i: int, tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    async for delta in worker.astream(request(i, tokens)):
        if first is None and delta.text:
            first = time.perf_counter() - started
        if delta.result is not None:
            return first or 0.0, time.perf_counter() - started, delta.result.completion_tokens
    raise RuntimeError("the stream ended without a result")


async def load(worker: WorkerProcess, clients: int, per_client: int, tokens: int) -> dict:
    async def client(c: int) -> list[tuple[float, float, int]]:
        return [await one(worker, c * per_client + r, tokens) for r in range(per_client)]

    started = time.perf_counter()
    runs = [run for runs in await asyncio.gather(*(client(c) for c in range(clients))) for run in runs]
    wall = time.perf_counter() - started
    firsts, latencies = [r[0] for r in runs], [r[1] for r in runs]
    return {"tok_s": sum(r[2] for r in runs) / wall, "ttft50": statistics.median(firsts), "ttft95": percentile(firsts, 0.95),
            "lat50": statistics.median(latencies), "lat95": percentile(latencies, 0.95)}


def measure(spec: WorkerSpec, args: argparse.Namespace) -> dict[int, dict]:
    started = time.perf_counter()
    with WorkerProcess(spec) as worker:
        print(f"  {spec.engine}: loaded in {time.perf_counter() - started:.1f} s ({worker.info.device}, {worker.info.dtype})", flush=True)
        asyncio.run(load(worker, 1, 1, 4))  # warm-up: first calls pay one-time allocations
        return {n: asyncio.run(load(worker, n, args.requests_per_client, args.tokens)) for n in args.clients}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["default", "tiny"], default="default")
    parser.add_argument("--clients", type=lambda s: sorted(int(x) for x in s.split(",")), default=[1, 8, 32, 64])
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "tiny":
            checkpoint = build_tiny_llama(Path(tmp) / "tiny", heads=2, kv_heads=1)
        else:
            entry = next(m for m in BUILTIN_MODELS if m.model_id == DEFAULT_MODEL_ID)
            checkpoint = materialize_gguf(package_path(entry.source.location), load_settings().models_dir / DEFAULT_MODEL_ID)
        base = WorkerSpec(args.model, str(checkpoint), dtype="float32", max_batch_size=max(args.clients), max_queue=10_000)
        print(f"{args.model} model, {args.tokens} tokens per request, {args.requests_per_client} request(s) per client", flush=True)
        results = {"builtin": measure(base, args)}
        python = vllm_python()
        if python:
            results["vllm"] = measure(dataclasses.replace(base, engine="vllm", python=python), args)
    print(f"{'engine':8s} {'clients':>7s} {'tok/s':>8s} {'TTFT p50':>9s} {'TTFT p95':>9s} {'lat p50':>8s} {'lat p95':>8s}")
    for engine, rows in results.items():
        for n, r in rows.items():
            print(f"{engine:8s} {n:7d} {r['tok_s']:8.1f} {r['ttft50']:8.3f}s {r['ttft95']:8.3f}s {r['lat50']:7.2f}s {r['lat95']:7.2f}s")
    for n in args.clients:
        if "vllm" in results:
            print(f"ratio vllm/builtin at {n} clients: {results['vllm'][n]['tok_s'] / results['builtin'][n]['tok_s']:.2f}x tokens/s")
        else:
            print(f"ratio vllm/builtin at {n} clients: n/a (set TUNEFORGE_VLLM_PYTHON to a Python with vllm installed)")


if __name__ == "__main__":
    main()
