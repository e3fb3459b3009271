"""ROUGE-1, ROUGE-2 and ROUGE-L of generated texts against references, with Google's `rouge-score` package.

    scores = score_rouge(["the cat sat"], ["the cat sat down"])     # RougeScores(rouge1=0.857..., ...)

Each pair is scored on its own (F-measure: the harmonic mean of n-gram precision and recall; ROUGE-L uses the
longest common subsequence) and the corpus figure is the mean over pairs, as Hugging Face `evaluate` reports
it. Text is lowercased and split on non-alphanumeric characters by rouge-score's tokenizer; with `use_stemmer`
(the default, as in the DialogSum and most summarization papers) the Porter stemmer folds "checks"/"checked"
to "check". An empty prediction scores 0. Pure Python: runs in the CLI process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tuneforge.errors import InvalidInput

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class RougeScores:
    rouge1: float  # mean F-measure over the pairs, 0-1
    rouge2: float
    rougeL: float  # noqa: N815 (rouge-score's name)
    pairs: int
    per_pair: tuple[dict[str, float], ...] = ()  # {"rouge1", "rouge2", "rougeL"} F-measures, in input order

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in ROUGE_TYPES}


def score_rouge(predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True) -> RougeScores:
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise InvalidInput(f"{len(predictions)} predictions for {len(references)} references: they must pair up", field="predictions")
    if not references:
        raise InvalidInput("no pairs to score: give at least one prediction and reference", field="predictions")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    per_pair = tuple(
        {name: score.fmeasure for name, score in scorer.score(reference, prediction).items()}  # score(target, prediction)
        for prediction, reference in zip(predictions, references, strict=True)
    )
    means = {name: sum(p[name] for p in per_pair) / len(per_pair) for name in ROUGE_TYPES}
    return RougeScores(means["rouge1"], means["rouge2"], means["rougeL"], len(per_pair), per_pair)
