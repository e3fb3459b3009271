"""What a worker process needs to load a model: resolved by the catalog in the parent, with no torch."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class WorkerSpec:
    model_id: str
    checkpoint: str  # HF checkpoint directory (written first from `gguf` when that is set)
    gguf: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    adapter: str | None = None  # a PEFT adapter directory applied on top of `checkpoint`
    max_batch_size: int = 8  # sequences decoded together (continuous batching)
    max_queue: int = 64  # requests waiting beyond that are refused with Throttled (back-pressure)
    task: str = "generate"  # "generate" (a causal LM), "embed" (a sentence-transformers directory) or "rerank" (a cross-encoder)
    engine: str = "builtin"  # which Engine serves generation (tuneforge.inference.worker.ENGINES)
    python: str | None = None  # the interpreter the worker runs in (None: this one); vLLM may live in its own

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "WorkerSpec":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Capacity:
    """How much one serving worker takes on: the server's settings, applied to every spec it starts."""

    max_batch_size: int = 8
    max_queue: int = 64
    engine: str = "builtin"  # for generation workers; embedding and reranker workers always run sentence-transformers
    python: str | None = None  # the interpreter of `engine`'s workers (TUNEFORGE_VLLM_PYTHON for vllm)

    def apply(self, spec: WorkerSpec) -> WorkerSpec:
        spec = dataclasses.replace(spec, max_batch_size=self.max_batch_size, max_queue=self.max_queue)
        if spec.task == "generate":
            spec = dataclasses.replace(spec, engine=self.engine, python=self.python)
        return spec
