"""The metrics an evaluation job computes, by name, and how each is scored.

Deterministic ones need a record's referenceResponse and work offline:

    Builtin.Accuracy      the task's usual one: ROUGE-L (Summarization, Generation, Custom), token F1
                          (QuestionAndAnswer), exact match (Classification)
    Tuneforge.Rouge1 / Rouge2 / RougeL   F-measures, Google's rouge-score with stemming
    Tuneforge.ExactMatch  1 when the response equals the reference after lowercasing and removing punctuation
    Tuneforge.TokenF1     SQuAD's token-overlap F1 of the same normalized texts

Judge metrics are rated by the evaluator model (evaluatorModelConfig) on a 1-5 scale and reported as (n-1)/4 in
0-1, each with the judge's explanation; a custom metric (customMetricConfig) carries its own instructions and
rating scale. Bedrock's prompts are not public: the rubrics below are ours, one sentence each.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

from tuneforge.errors import InvalidInput
from tuneforge.evaluation.rouge import score_rouge

TASK_TYPES = ("Summarization", "Classification", "QuestionAndAnswer", "Generation", "Custom")
DETERMINISTIC = ("Builtin.Accuracy", "Tuneforge.Rouge1", "Tuneforge.Rouge2", "Tuneforge.RougeL", "Tuneforge.ExactMatch",
                 "Tuneforge.TokenF1")
JUDGED = {
    "Builtin.Correctness": "Is the response correct, judged against the reference answer when one is given?",
    "Builtin.Completeness": "Does the response address every part of the prompt, and of the reference answer?",
    "Builtin.Faithfulness": "Does the response state only what the prompt (and its context) supports, without invention?",
    "Builtin.Helpfulness": "Would the response help the person who wrote the prompt?",
}


@dataclass(frozen=True)
class CustomMetric:
    name: str
    instructions: str
    scale: tuple[tuple[str, float], ...]  # (definition, value) pairs of its rating scale; empty: 1-5


def check_metric_names(names: list[str], custom: dict[str, CustomMetric], *, where: str) -> None:
    allowed = [*DETERMINISTIC, *JUDGED, *custom]
    for j, name in enumerate(names):
        if name not in allowed:
            raise InvalidInput(f"{where}.metricNames[{j}]: unknown metric {name!r}; tuneforge computes {', '.join(allowed)}",
                               field=f"{where}.metricNames")


def is_judged(name: str, custom: dict[str, CustomMetric]) -> bool:
    return name in JUDGED or name in custom


def normalize(text: str) -> str:
    text = text.lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    predicted, wanted = normalize(prediction).split(), normalize(reference).split()
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if not predicted or not wanted or not common:
        return float(predicted == wanted)
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def deterministic(name: str, task: str, response: str, reference: str) -> float:
    if name == "Builtin.Accuracy":
        name = {"QuestionAndAnswer": "Tuneforge.TokenF1", "Classification": "Tuneforge.ExactMatch"}.get(task, "Tuneforge.RougeL")
    if name == "Tuneforge.ExactMatch":
        return float(normalize(response) == normalize(reference))
    if name == "Tuneforge.TokenF1":
        return token_f1(response, reference)
    scores = score_rouge([response], [reference])
    return {"Tuneforge.Rouge1": scores.rouge1, "Tuneforge.Rouge2": scores.rouge2, "Tuneforge.RougeL": scores.rougeL}[name]


def judge_prompt(metric: str, custom: dict[str, CustomMetric], prompt: str, response: str, reference: str | None) -> str:
    if metric in custom:
        rubric = custom[metric].instructions
        scale = custom[metric].scale
        ratings = "; ".join(f"{value:g} = {definition}" for definition, value in scale) if scale else "1 (worst) to 5 (best)"
    else:
        rubric, ratings = JUDGED[metric], "1 (worst) to 5 (best)"
    reference_part = f"\nReference answer:\n{reference}\n" if reference else ""
    return (f"Grade the response. {rubric}\nPrompt:\n{prompt}\n{reference_part}Response:\n{response}\n"
            f"Rate it {ratings}. Reply 'Score: <number>', then 'Reason: <one sentence>'.")


_SCORE = re.compile(r"score\s*[:=]?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_judgement(text: str, metric: str, custom: dict[str, CustomMetric]) -> tuple[float | None, str]:
    """The judge's score in 0-1 (None when it gave none on its scale) and its explanation."""
    match = _SCORE.search(text) or _NUMBER.search(text)
    reason = text.split("Reason:", 1)[1].strip() if "Reason:" in text else text.strip()
    if match is None:
        return None, f"the judge gave no score: {text.strip()[:300]}"
    value = float(match.group(1) if match.re is _SCORE else match.group(0))
    scale = custom[metric].scale if metric in custom else ()
    values = [v for _, v in scale] if scale else [1.0, 5.0]
    low, high = min(values), max(values)
    if not low <= value <= high or high == low:
        return None, f"the judge's score {value:g} is off its scale {low:g}-{high:g}: {text.strip()[:300]}"
    return (value - low) / (high - low), reason[:1000]
