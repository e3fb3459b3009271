"""Compare models side by side: ROUGE of their greedy outputs on held-out prompts, perplexity on held-out text.

    models = [EvalModel(i, resolver.worker_spec(resolver.resolve(i))) for i in ("tiny", "my-summarizer")]  # tuneforge.models
    rouge = compare_rouge(models, load_prompt_rows("dev.jsonl", limit=100), max_tokens=128)
    ppl = compare_perplexity(models, load_texts(["13-tools.md", "14-over-optimization.md"]))

The models run one after another in one child process (tuneforge.evaluation.run: it imports torch, this module
does not); ROUGE is scored here, in pure Python. `on_event` receives the child's events (loading, progress) for
progress bars. Every model sees the same rows or texts, so the figures compare directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneforge.errors import InvalidInput
from tuneforge.evaluation.heldout import HeldOutText, PromptRow
from tuneforge.evaluation.process import Event, run_job
from tuneforge.evaluation.rouge import RougeScores, score_rouge
from tuneforge.inference.spec import WorkerSpec

DEFAULT_MAX_TOKENS = 128  # DialogSum summaries are 20-60 words; room for a longer answer without running on
TOKENS_PER_FORWARD = 2048  # perplexity: padded tokens per forward pass (bounds activation memory, as in training)


@dataclass(frozen=True)
class EvalModel:
    label: str  # how the model is shown in tables and charts
    spec: WorkerSpec


@dataclass(frozen=True)
class RougeResult:
    label: str
    scores: RougeScores
    predictions: list[str]
    generated_tokens: int
    seconds: float  # generation only, loading excluded
    load_seconds: float
    device: str
    dtype: str


@dataclass(frozen=True)
class RougeComparison:
    rows: list[PromptRow]
    results: list[RougeResult]
    max_tokens: int
    chat: bool

    def to_dict(self, *, examples: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows": len(self.rows), "maxTokens": self.max_tokens, "chat": self.chat,
            "models": [{"model": r.label, **r.scores.as_dict(), "generatedTokens": r.generated_tokens,
                        "generationSeconds": round(r.seconds, 3), "loadSeconds": round(r.load_seconds, 3),
                        "device": r.device, "dtype": r.dtype} for r in self.results],
        }
        if examples:
            out["examples"] = [{"prompt": row.prompt, "reference": row.reference,
                                "predictions": {r.label: r.predictions[i] for r in self.results},
                                "rouge": {r.label: r.scores.per_pair[i] for r in self.results}}
                               for i, row in enumerate(self.rows)]
        return out


@dataclass(frozen=True)
class PerplexityResult:
    label: str
    perplexity: float
    loss: float  # mean negative log-likelihood per predicted token (nats)
    tokens: int  # tokens predicted
    max_length: int
    seconds: float
    load_seconds: float
    device: str
    dtype: str


@dataclass(frozen=True)
class PerplexityComparison:
    sources: list[str]
    results: list[PerplexityResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sources": self.sources, "models": [{"model": r.label, **{k: v for k, v in asdict(r).items() if k != "label"}}
                                                     for r in self.results]}


def _check_models(models: Sequence[EvalModel]) -> None:
    if not models:
        raise InvalidInput("give at least one model to evaluate (--model)", field="--model")
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise InvalidInput(f"each model may be given once; got {', '.join(labels)}", field="--model")


def _job(task: str, models: Sequence[EvalModel], threads: int | None) -> dict[str, Any]:
    return {"task": task, "threads": threads, "models": [{"label": m.label, "spec": asdict(m.spec)} for m in models]}


def _loaded(events: list[Event]) -> Callable[[Event], None]:
    return lambda event: events.append(event) if event["event"] == "loaded" else None


def compare_rouge(models: Sequence[EvalModel], rows: Sequence[PromptRow], *, max_tokens: int = DEFAULT_MAX_TOKENS,
                  chat: bool = False, threads: int | None = None, on_event: Callable[[Event], None] | None = None,
                  use_stemmer: bool = True) -> RougeComparison:
    _check_models(models)
    if not rows:
        raise InvalidInput("no held-out rows to evaluate on", field="DATA")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidInput(f"--max-tokens must be a positive integer, got {max_tokens!r}", field="--max-tokens")
    loaded: list[Event] = []
    keep = _loaded(loaded)
    job = {**_job("generate", models, threads), "prompts": [r.prompt for r in rows], "chat": chat, "max_tokens": max_tokens}
    outputs = run_job(job, on_event=lambda e: (keep(e), on_event(e) if on_event else None))
    references = [r.reference for r in rows]
    results = [
        RougeResult(m.label, score_rouge(out["predictions"], references, use_stemmer=use_stemmer), out["predictions"],
                    out["generated_tokens"], out["seconds"], load["seconds"], load["device"], load["dtype"])
        for m, out, load in zip(models, outputs, loaded, strict=True)
    ]
    return RougeComparison(list(rows), results, max_tokens, chat)


def compare_perplexity(models: Sequence[EvalModel], texts: Sequence[HeldOutText], *, max_length: int | None = None,
                       threads: int | None = None, on_event: Callable[[Event], None] | None = None,
                       tokens_per_forward: int = TOKENS_PER_FORWARD) -> PerplexityComparison:
    _check_models(models)
    if not texts:
        raise InvalidInput("no held-out text to measure", field="FILE")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
        raise InvalidInput(f"--max-length must be an integer of at least 2, got {max_length!r}", field="--max-length")
    loaded: list[Event] = []
    keep = _loaded(loaded)
    job = {**_job("perplexity", models, threads), "texts": [t.text for t in texts], "max_length": max_length,
           "tokens_per_forward": tokens_per_forward}
    outputs = run_job(job, on_event=lambda e: (keep(e), on_event(e) if on_event else None))
    results = [
        PerplexityResult(m.label, out["perplexity"], out["loss"], out["tokens"], out["max_length"], out["seconds"],
                         load["seconds"], load["device"], load["dtype"])
        for m, out, load in zip(models, outputs, loaded, strict=True)
    ]
    return PerplexityComparison([t.source for t in texts], results)
