"""Model evaluation: ROUGE on held-out prompt/completion rows and perplexity on held-out text, several models
side by side. Nothing here imports torch; the models run in a child process (tuneforge.evaluation.run)."""

from __future__ import annotations

from tuneforge.evaluation.compare import (
    DEFAULT_MAX_TOKENS,
    EvalModel,
    PerplexityComparison,
    PerplexityResult,
    RougeComparison,
    RougeResult,
    compare_perplexity,
    compare_rouge,
)
from tuneforge.evaluation.heldout import HeldOutText, PromptRow, load_prompt_rows, load_texts
from tuneforge.evaluation.rouge import ROUGE_TYPES, RougeScores, score_rouge

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ROUGE_TYPES",
    "EvalModel",
    "HeldOutText",
    "PerplexityComparison",
    "PerplexityResult",
    "PromptRow",
    "RougeComparison",
    "RougeResult",
    "RougeScores",
    "compare_perplexity",
    "compare_rouge",
    "load_prompt_rows",
    "load_texts",
    "score_rouge",
]
