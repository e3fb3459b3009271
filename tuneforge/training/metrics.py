"""Bedrock's metric files, written as training goes (one flushed row per step or per validation).

    <output>/training_artifacts/step_wise_training_metrics.csv        step_number,epoch_number,training_loss,perplexity
    <output>/validation_artifacts/post_fine_tuning_validation/validation_metrics.csv
                                                                       step_number,epoch_number,validation_loss,perplexity

Preference tuning (DPO) writes its own columns in the same files: the loss, then TRL's reward metrics, where a
reward is beta x (policy - reference) summed log-probability of an answer:

    step_number,epoch_number,training_loss,rewards_chosen,rewards_rejected,reward_margin,reward_accuracy
    step_number,epoch_number,validation_loss,rewards_chosen,rewards_rejected,reward_margin,reward_accuracy

(reward_accuracy: the share of pairs whose chosen answer gets the higher reward). Perplexity is left out there:
exp of a DPO loss means nothing.

step_number counts optimizer steps from 0 and epoch_number counts epochs from 0. A resumed run reopens the
files and first drops rows past its checkpoint's step, so the replayed steps are not written twice.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

TRAINING_CSV = Path("training_artifacts/step_wise_training_metrics.csv")
VALIDATION_CSV = Path("validation_artifacts/post_fine_tuning_validation/validation_metrics.csv")
TRAINING_COLUMNS = ("step_number", "epoch_number", "training_loss", "perplexity")
VALIDATION_COLUMNS = ("step_number", "epoch_number", "validation_loss", "perplexity")
REWARD_COLUMNS = ("rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy")
PREFERENCE_TRAINING_COLUMNS = (*TRAINING_COLUMNS[:3], *REWARD_COLUMNS)
PREFERENCE_VALIDATION_COLUMNS = (*VALIDATION_COLUMNS[:3], *REWARD_COLUMNS)


def perplexity(loss: float) -> float:
    """exp(loss); infinite rather than an OverflowError for a diverged loss."""
    return math.exp(loss) if loss < 700 else math.inf  # exp overflows a double a little above 709


class MetricsCsv:
    """Append-only CSV with a header; `keep_through_step` (on resume) first drops rows with a later step."""

    def __init__(self, path: Path, columns: tuple[str, ...], *, keep_through_step: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[list[str]] = []
        if keep_through_step is not None and path.exists():
            with path.open(newline="") as old:
                kept = [row for row in list(csv.reader(old))[1:] if row and int(row[0]) <= keep_through_step]
        self.columns = columns
        self._file: TextIO = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerows([list(columns), *kept])
        self._file.flush()

    def write(self, step: int, epoch: int, loss: float, metrics: Mapping[str, float] | None = None) -> None:
        """One row: the loss, then each further column: perplexity from the loss, any other from `metrics`."""
        rest = [perplexity(loss) if column == "perplexity" else (metrics or {})[column] for column in self.columns[3:]]
        self._writer.writerow([step, epoch, *(f"{value:.6f}" for value in (loss, *rest))])
        self._file.flush()

    def close(self) -> None:
        self._file.close()
