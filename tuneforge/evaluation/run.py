"""The evaluation process: loads each model in turn and generates, or measures perplexity. It imports torch.

    python -m tuneforge.evaluation.run < job.json           # started by tuneforge.evaluation.process

Input (stdin, one JSON object): {"task": "generate" | "perplexity", "models": [{"label", "spec": WorkerSpec}],
"threads": int | null} plus, for "generate", {"prompts": [str], "chat": bool, "max_tokens": int} and, for
"perplexity", {"texts": [str], "max_length": int | null, "tokens_per_forward": int}.
Output (stdout, JSON lines): {"event": "loading", "model": i}, {"event": "loaded", "model": i, "seconds", "device",
"dtype"}, {"event": "progress", "model": i, "done", "total"}, {"event": "result", "model": i, ...} per model,
or {"event": "error", "type", "message", "field"} and exit code 1. Logs go to stderr.

- generate: greedy (temperature 0), through the BatchEngine the model workers use (continuous batching, the adapter merged as
  when serving), so the texts are those the model serves. Raw prompts are tokenized as the trainer does for
  prompt/completion records; with "chat" each prompt is one user message in the model's chat template.
- perplexity: exp(mean negative log-likelihood per predicted token), measured the way the trainer measures
  validation loss for continued pre-training: each text + EOS, packed back to back into rows of `max_length`
  tokens (default: the trainer's default, the model's context at most 1024); a text longer than a row continues
  in the next row without the previous row as context; no prediction crosses from one text into the next.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections import deque
from typing import Any

from tuneforge.errors import InvalidInput
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams
from tuneforge.inference.spec import WorkerSpec
from tuneforge.processes.pipe import LineWriter, error_event
from tuneforge.training.lengths import DEFAULT_MAX_LEN  # perplexity windows as long as pre-training's rows


def _send(payload: dict[str, Any]) -> None:
    LineWriter(sys.stdout).send(payload)


def generate(engine: Any, index: int, prompts: list[str], *, chat: bool, max_tokens: int) -> dict[str, Any]:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    requests = [GenerationRequest(messages=(Message("user", p),), params=params) if chat else GenerationRequest(prompt=p, params=params)
                for p in prompts]
    window = engine.max_batch_size * 2  # enough queued to refill the batch at once; far under max_queue
    in_flight: deque = deque()
    texts: list[str] = []
    tokens = 0

    def finish() -> None:
        nonlocal tokens
        row, handle = in_flight.popleft()
        try:
            result = handle.result()
        except InvalidInput as exc:
            raise InvalidInput(f"row {row + 1}: {exc.message}", field=exc.field) from None
        texts.append(result.text.strip())
        tokens += result.completion_tokens
        _send({"event": "progress", "model": index, "done": len(texts), "total": len(requests)})

    started = time.perf_counter()
    for row, request in enumerate(requests):
        if len(in_flight) >= window:
            finish()
        in_flight.append((row, engine.submit(request)))
    while in_flight:
        finish()
    return {"predictions": texts, "generated_tokens": tokens, "seconds": time.perf_counter() - started}


def perplexity(engine: Any, index: int, texts: list[str], *, max_length: int | None, tokens_per_forward: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from tuneforge.training.data import IGNORE, collate, forward_chunks, pretraining_rows
    from tuneforge.training.metrics import perplexity as ppl

    if not hasattr(engine, "model"):  # the forward passes below need the transformers model itself
        raise InvalidInput("perplexity is computed with the built-in engine: evaluate with engine 'builtin'", field="engine")
    model, tokenizer = engine.model, engine.tokenizer
    max_len = max_length or min(DEFAULT_MAX_LEN, engine.context_length)
    if max_len > engine.context_length:
        raise InvalidInput(f"--max-length {max_len} is longer than the model's context of {engine.context_length}", field="--max-length")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows = pretraining_rows(tokenizer, ({"input": t} for t in texts), max_len=max_len, eos_id=eos, source="held-out")
    chunks = forward_chunks(rows, max_tokens=tokens_per_forward)
    total_rows, done, nll, predicted = len(rows), 0, 0.0, 0
    started = time.perf_counter()
    with torch.inference_mode():
        for chunk in chunks:
            batch = collate(chunk, pad_id=pad).to(engine.device)
            keep = batch.targets != IGNORE
            logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, logits_to_keep=keep, use_cache=False).logits
            nll += F.cross_entropy(logits.float(), batch.targets[keep], reduction="sum").item()
            predicted += batch.target_tokens
            done += len(chunk)
            _send({"event": "progress", "model": index, "done": done, "total": total_rows})
    loss = nll / max(predicted, 1)
    return {"perplexity": ppl(loss), "loss": loss, "tokens": predicted, "rows": total_rows, "max_length": max_len,
            "seconds": time.perf_counter() - started}


def run(job: dict[str, Any]) -> None:
    import torch
    import transformers

    from tuneforge.inference.worker import load_engine

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    for index, model in enumerate(job["models"]):
        _send({"event": "loading", "model": index})
        started = time.perf_counter()
        engine = load_engine(WorkerSpec(**model["spec"]))
        try:
            _send({"event": "loaded", "model": index, "seconds": time.perf_counter() - started,
                   "device": str(engine.device), "dtype": str(engine.dtype).removeprefix("torch.")})
            if job["task"] == "generate":
                result = generate(engine, index, job["prompts"], chat=bool(job.get("chat")), max_tokens=int(job["max_tokens"]))
            else:
                result = perplexity(engine, index, job["texts"], max_length=job.get("max_length"),
                                    tokens_per_forward=int(job.get("tokens_per_forward") or 2048))
        finally:
            engine.close()
            del engine
            gc.collect()  # the next model loads into the memory this one held
        _send({"event": "result", "model": index, **result})


def main() -> int:
    try:
        run(json.loads(sys.stdin.read()))
    except Exception as exc:  # reported to the caller with its type; an unexpected one's traceback goes to the log
        _send(error_event(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
