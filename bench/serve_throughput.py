"""Provisioned-throughput serving: BatchEngine (continuous batching) vs sequential `model.generate`, same run.

    python bench/serve_throughput.py                                  # 8 clients x 16 requests (several minutes)
    python bench/serve_throughput.py --requests-per-client 2          # quick check while developing
    python bench/serve_throughput.py --dtype float32
    python bench/serve_throughput.py --clients 2 --requests-per-client 1 --prompt-tokens 16 --max-tokens 4   # smoke run (CI)

Workload: the default model (SmolLM2-135M-Instruct, materialized the product way), `--clients` client
threads each sending `--requests-per-client` chat requests one after another; every prompt is about
`--prompt-tokens` tokens and every answer exactly `--max-tokens` tokens (greedy; the batch engine ignores
the end token, the baseline sets min_new_tokens, so both sides produce the same number of tokens).
(a) BatchEngine with `--clients` threads; (b) the same requests one at a time through `model.generate` on
the same weights. Prints aggregate output tokens/s, p50/p95 request latency (the batch side's includes
time queued in the engine; the baseline's is one generate call and leaves out the wait a sequential
server would add) and the throughput ratio. Other load on the machine skews both sides: the load average
is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers")

import torch  # noqa: E402

from tuneforge.catalog.builtin import BUILTIN_MODELS, DEFAULT_MODEL_ID, package_path  # noqa: E402
from tuneforge.inference.materialize import materialize_gguf  # noqa: E402
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams  # noqa: E402
from tuneforge.inference.batch_engine import BatchEngine  # noqa: E402
from tuneforge.settings import load_settings  # noqa: E402

TOPICS = [
    "a hotel check-in", "a credit card payment", "continued pre-training", "fine-tuning a model for JSON output",
    "a knowledge base with citations", "an exchange trading halt", "an opening auction", "a market maker",
    "a room upgrade", "a late checkout", "a currency conversion", "an order book", "a limit order",
    "a retrieval pipeline", "a summary of a meeting", "a polite complaint reply",
]
FILLER = (
    "Context: the guest arrived late in the evening after a long flight, the front desk was busy, the booking "
    "was made through a travel agent, breakfast is served from seven to ten, the pool closes at nine, the "
    "exchange opens at half past nine with an auction, market makers quote both sides, and the knowledge base "
    "holds the hotel and exchange rule books with citations to each section. "
) * 4


def build_requests(engine: BatchEngine, count: int, prompt_tokens: int, max_tokens: int) -> list[GenerationRequest]:
    """`count` distinct chat requests of about `prompt_tokens` tokens (the context filler is cut to fit)."""
    tokenizer = engine.tokenizer
    filler_ids = tokenizer(FILLER, add_special_tokens=False)["input_ids"]
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)

    def request(i: int, room: int) -> GenerationRequest:
        question = f"Request {i}: explain {TOPICS[i % len(TOPICS)]} step by step, in detail."
        context = tokenizer.decode(filler_ids[i % 7 : i % 7 + room])  # offset so prompts differ beyond the question
        return GenerationRequest(messages=(Message("user", f"{context}\n{question}"),), params=params)

    requests = []
    for i in range(count):
        # measure the rendered prompt once, then cut the context by the excess (re-tokenizing may shift by a token)
        excess = len(engine.prompt_ids(request(i, prompt_tokens))) - prompt_tokens
        requests.append(request(i, max(0, prompt_tokens - excess)))
    return requests


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_batch(engine: BatchEngine, requests: list[GenerationRequest], clients: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def client(mine: list[GenerationRequest]) -> None:
        for request in mine:
            result = engine.generate(request)
            with lock:
                latencies.append(result.total_seconds)
                tokens[0] += result.completion_tokens

    threads = [threading.Thread(target=client, args=(requests[c::clients],)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, tokens[0]


def run_sequential(engine: BatchEngine, requests: list[GenerationRequest], max_tokens: int) -> tuple[float, list[float], int]:
    model, latencies, tokens = engine.model, [], 0
    prompts = [torch.tensor([engine.prompt_ids(r)]) for r in requests]  # same ids the batch side sees
    started = time.perf_counter()
    with torch.inference_mode():
        for ids in prompts:
            t = time.perf_counter()
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_tokens,
                min_new_tokens=max_tokens, pad_token_id=engine.tokenizer.eos_token_id,
            )
            latencies.append(time.perf_counter() - t)
            tokens += out.shape[1] - ids.shape[1]
    return time.perf_counter() - started, latencies, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests-per-client", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16 (auto: bf16 on CPUs with native bf16)")
    parser.add_argument("--skip-baseline", action="store_true", help="only run the batch engine")
    args = parser.parse_args()

    settings = load_settings()
    entry = next(m for m in BUILTIN_MODELS if m.model_id == DEFAULT_MODEL_ID)
    checkpoint = materialize_gguf(package_path(entry.source.location), settings.models_dir / DEFAULT_MODEL_ID)
    load_before = os.getloadavg()
    engine = BatchEngine(checkpoint, device="cpu", dtype=args.dtype, max_batch_size=args.clients, max_queue=args.clients)
    requests = build_requests(engine, args.clients * args.requests_per_client, args.prompt_tokens, args.max_tokens)
    prompt_lengths = [len(engine.prompt_ids(r)) for r in requests]
    expected = len(requests) * args.max_tokens

    # warm-up: first calls pay for one-time allocations and kernel selection on both paths
    run_batch(engine, requests[: args.clients], args.clients)
    rows = {}
    if not args.skip_baseline:
        run_sequential(engine, requests[:1], 8)
        rows["sequential generate"] = run_sequential(engine, requests, args.max_tokens)
    rows[f"BatchEngine ({args.clients} clients)"] = run_batch(engine, requests, args.clients)
    engine.close()
    load_after = os.getloadavg()

    print(
        f"model {DEFAULT_MODEL_ID}, dtype {engine.dtype}, torch threads {torch.get_num_threads()}, "
        f"{args.clients} clients x {args.requests_per_client} requests, prompt tokens {min(prompt_lengths)}-{max(prompt_lengths)}, "
        f"{args.max_tokens} output tokens each"
    )
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs)")
    print(f"{'':28}{'wall s':>9}{'tokens':>8}{'tokens/s':>10}{'p50 s':>8}{'p95 s':>8}")
    for name, (wall, latencies, tokens) in rows.items():
        assert tokens == expected, f"{name} produced {tokens} tokens, expected {expected}"
        print(f"{name:28}{wall:9.1f}{tokens:8d}{tokens / wall:10.1f}"
              f"{statistics.median(latencies):8.2f}{percentile(latencies, 0.95):8.2f}")
    if len(rows) == 2:
        (base_wall, _, base_tokens), (batch_wall, _, batch_tokens) = rows.values()
        print(f"throughput ratio (batch / sequential): {(batch_tokens / batch_wall) / (base_tokens / base_wall):.2f}x")


if __name__ == "__main__":
    main()
