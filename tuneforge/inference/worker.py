"""A model worker process: loads one model and serves concurrent generation requests as JSON lines.

    python -m tuneforge.inference.worker --spec '{"checkpoint": "...", ...}'

Protocol (one JSON object per line): the worker first prints {"event": "ready", ...} (or "error") on stdout.
Requests {"id", "request": GenerationRequest.to_dict(), "stream": bool} may arrive at any time and are
batched together by the spec's engine (an `Engine`, tuneforge.inference.protocol; `ENGINES` names them);
{"id", "op": "cancel"} drops one. Each request is answered
by zero or more {"id", "event": "delta", "text"} lines and one {"id", "event": "done", "result"} or
{"id", "event": "error", "type", "message", "field"} line; answers of different requests interleave.
Logs and progress go to stderr.

An embedding worker (`WorkerSpec.task == "embed"`, a sentence-transformers directory) answers
{"id", "op": "embed", "texts": [...]} with one {"id", "event": "done", "result": {"vectors": base64 float32,
"shape": [n, dimension], "tokens": word pieces read, when the request set "count_tokens"}} line: rows L2-normalized, in request order. Its ready line adds "dimension" and
"max_tokens" (the model's max_seq_length: longer texts are truncated by the model, so callers keep chunks
within it). Requests are encoded one at a time, each as batches of `EMBED_BATCH` texts.

A reranker worker (`WorkerSpec.task == "rerank"`, a cross-encoder loaded by sentence-transformers' CrossEncoder)
answers {"id", "op": "rerank", "query", "documents": [...]} with {"id", "event": "done", "result": {"scores":
[...]}}: one relevance score per document, in request order, exactly what `CrossEncoder.predict` returns for the
(query, document) pairs (its default activation: a sigmoid for one label). Pairs are scored `RERANK_BATCH` at a
time; pairs longer than the model's max_length (its ready line's "max_tokens") are truncated by the tokenizer.

Keeping the model in its own process keeps torch out of the API and CLI processes, and a crash here
cannot take them down.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tuneforge.errors import InvalidInput, Unavailable
from tuneforge.inference.params import GenerationRequest
from tuneforge.inference.protocol import Engine
from tuneforge.inference.spec import WorkerSpec
from tuneforge.processes.pipe import LineWriter, error_event


def _builtin(spec: WorkerSpec, checkpoint: Path) -> Engine:
    from tuneforge.inference.batch_engine import BatchEngine

    return BatchEngine(
        checkpoint, device=spec.device, dtype=spec.dtype, adapter=Path(spec.adapter) if spec.adapter else None,
        max_batch_size=spec.max_batch_size, max_queue=spec.max_queue,
    )


def _vllm(spec: WorkerSpec, checkpoint: Path) -> Engine:
    from tuneforge.inference.vllm_engine import VllmEngine

    if importlib.util.find_spec("vllm") is None:
        raise Unavailable(f"vllm is not installed for {sys.executable}: set TUNEFORGE_VLLM_PYTHON to the Python of an "
                          "environment that has it (README, 'Serving on vLLM')", field="engine")

    return VllmEngine(checkpoint, device=spec.device, dtype=spec.dtype, adapter=Path(spec.adapter) if spec.adapter else None,
                      max_batch_size=spec.max_batch_size, max_queue=spec.max_queue)


# engine name -> loader; each loader imports its engine's libraries itself, so only the one in use is imported
ENGINES: dict[str, Callable[[WorkerSpec, Path], Engine]] = {"builtin": _builtin, "vllm": _vllm}


def load_engine(spec: WorkerSpec) -> Engine:
    loader = ENGINES.get(spec.engine)
    if loader is None:
        raise InvalidInput(f"engine {spec.engine!r} is not one of: {', '.join(sorted(ENGINES))}", field="engine")
    checkpoint = Path(spec.checkpoint)
    if spec.gguf:
        from tuneforge.inference.materialize import materialize_gguf

        materialize_gguf(Path(spec.gguf), checkpoint)
    return loader(spec, checkpoint)


EMBED_BATCH = 64  # texts per forward pass: bounds activation memory on long chunks


def load_embedder(spec: WorkerSpec):
    from sentence_transformers import SentenceTransformer

    path = Path(spec.checkpoint)
    if not (path / "modules.json").is_file():
        raise InvalidInput(f"{str(path)!r} is not a sentence-transformers directory (no modules.json)", field="model_id")
    device = None if spec.device == "auto" else spec.device
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def _dimension(model) -> int:
    # sentence-transformers 6 renamed get_sentence_embedding_dimension; accept both within our bounds
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def _embed_payload(model, texts: list[str], *, count_tokens: bool = False) -> dict:
    import numpy as np

    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput("texts must be a list of strings", field="texts")
    dimension = _dimension(model)
    if texts:
        vectors = model.encode(texts, batch_size=EMBED_BATCH, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
    else:
        vectors = np.zeros((0, dimension))
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return {"vectors": base64.b64encode(vectors.tobytes()).decode("ascii"), "shape": list(vectors.shape),
            # a second tokenization: only for callers that report usage (OpenAI), not for ingestion's many chunks
            **({"tokens": _tokens(model, texts)} if count_tokens else {})}


def _tokens(model, texts: list[str]) -> int:
    """Word pieces the model read, special tokens included and each text cut at max_seq_length as encode cuts it."""
    if not texts:
        return 0
    ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    return sum(len(row) for row in ids)


RERANK_BATCH = 32  # query-document pairs per forward pass: each pair is up to max_length tokens


def load_reranker(spec: WorkerSpec):
    from sentence_transformers import CrossEncoder

    path = Path(spec.checkpoint)
    if not (path / "config.json").is_file():
        raise InvalidInput(f"{str(path)!r} is not a cross-encoder directory (no config.json)", field="model_id")
    device = None if spec.device == "auto" else spec.device
    return CrossEncoder(str(path), device=device, local_files_only=True)


def _rerank_payload(model, query, documents) -> dict:
    if not isinstance(query, str) or not query:
        raise InvalidInput("query must be a non-empty string", field="query")
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise InvalidInput("documents must be a list of strings", field="documents")
    if not documents:
        return {"scores": []}
    scores = model.predict([(query, d) for d in documents], batch_size=RERANK_BATCH, show_progress_bar=False,
                           convert_to_numpy=True)
    return {"scores": [float(x) for x in scores.reshape(len(documents))]}


def _load_or_report(load, spec: WorkerSpec, out: LineWriter):
    """The loaded model, or None after telling the client why loading failed (the worker then exits non-zero)."""
    try:
        return load(spec)
    except BaseException as exc:
        out.send(error_event(exc))
        return None


def serve_embeddings(spec: WorkerSpec, out: LineWriter, stdin) -> int:
    started = time.perf_counter()
    model = _load_or_report(load_embedder, spec, out)
    if model is None:
        return 1
    out.send({
        "event": "ready", "load_seconds": round(time.perf_counter() - started, 3), "device": str(model.device),
        "dtype": "float32", "context_length": int(model.max_seq_length or 0),
        "dimension": _dimension(model), "max_tokens": int(model.max_seq_length or 0),
    })
    _answer_one_at_a_time(stdin, out, "embed", "an embedding model", lambda message: _embed_payload(
        model, message.get("texts"), count_tokens=bool(message.get("count_tokens"))))
    return 0


def serve_reranker(spec: WorkerSpec, out: LineWriter, stdin) -> int:
    started = time.perf_counter()
    model = _load_or_report(load_reranker, spec, out)
    if model is None:
        return 1
    # sentence-transformers 6 renamed CrossEncoder.max_length to max_seq_length; accept both within our bounds
    max_length = int(getattr(model, "max_seq_length", None) or model.max_length or 0)
    out.send({"event": "ready", "load_seconds": round(time.perf_counter() - started, 3), "device": str(model.device),
              "dtype": "float32", "context_length": max_length, "max_tokens": max_length})
    _answer_one_at_a_time(stdin, out, "rerank", "a reranker",
                          lambda message: _rerank_payload(model, message.get("query"), message.get("documents")))
    return 0


def _answer_one_at_a_time(stdin, out: LineWriter, op: str, serves: str, answer: Callable[[dict], dict]) -> None:
    """The loop of the workers whose requests are one forward pass or a few (embed, rerank): each answered in turn."""
    for line in stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        rid = message.get("id")
        if message.get("op") == "cancel":
            continue
        try:
            if message.get("op") != op:
                raise InvalidInput(f"this worker serves {serves}: send op {op!r}", field="op")
            out.send({"id": rid, "event": "done", "result": answer(message)})
        except Exception as exc:  # the request's own failure goes to its caller, not to the worker
            out.send({"id": rid, **error_event(exc)})


def _forward(out: LineWriter, rid, handle, stream: bool, handles: dict) -> None:
    try:
        for delta in handle:
            if stream and delta.text:
                out.send({"id": rid, "event": "delta", "text": delta.text})
            if delta.result is not None:
                out.send({"id": rid, "event": "done", "result": asdict(delta.result)})
    except Exception as exc:  # the request's own failure goes to its caller, not to the worker
        out.send({"id": rid, **error_event(exc)})
    finally:
        handles.pop(rid, None)


def serve(spec: WorkerSpec, stdin=sys.stdin, stdout=sys.stdout) -> int:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    out = LineWriter(stdout)
    if spec.task == "embed":
        return serve_embeddings(spec, out, stdin)
    if spec.task == "rerank":
        return serve_reranker(spec, out, stdin)
    started = time.perf_counter()
    engine = _load_or_report(load_engine, spec, out)
    if engine is None:
        return 1
    out.send({
        "event": "ready", "load_seconds": round(time.perf_counter() - started, 3),
        "device": str(engine.device), "dtype": str(engine.dtype).removeprefix("torch."),
        "context_length": engine.context_length,
    })
    handles: dict = {}
    try:
        for line in stdin:
            if not line.strip():
                continue
            message = json.loads(line)
            rid = message.get("id")
            if message.get("op") == "cancel":
                if rid in handles:
                    handles[rid].cancel()
                continue
            try:
                handle = engine.submit(GenerationRequest.from_dict(message["request"]))
            except Exception as exc:  # invalid or throttled: answered at once, the worker goes on
                out.send({"id": rid, **error_event(exc)})
                continue
            handles[rid] = handle
            threading.Thread(target=_forward, args=(out, rid, handle, bool(message.get("stream")), handles), daemon=True).start()
    finally:
        engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    # PEFT calls a transformers API deprecated in 5.x when it applies an adapter: noise on every custom model load
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="WorkerSpec as JSON")
    args = parser.parse_args(argv)
    return serve(WorkerSpec.from_json(args.spec), stdout=_protocol_channel())


def _protocol_channel():
    """stdout, kept for protocol lines alone: file descriptor 1 then points at stderr, so what a library prints
    (vLLM logs to stdout) goes to the log instead of corrupting the answers."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return channel


if __name__ == "__main__":
    sys.exit(main())
