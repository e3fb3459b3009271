"""Bedrock's metric files, written as training goes (one flushed row per step or per validation).

    <output>/training_artifacts/step_wise_training_metrics.csv        step_number,epoch_number,training_loss,perplexity
    <output>/validation_artifacts/post_fine_tuning_validation/validation_metrics.csv
                                                                       step_number,epoch_number,validation_loss,perplexity

step_number counts optimizer steps from 0 and epoch_number counts epochs from 0. A resumed run reopens the
files and first drops rows past its checkpoint's step, so the replayed steps are not written twice.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TextIO

TRAINING_CSV = Path("training_artifacts/step_wise_training_metrics.csv")
VALIDATION_CSV = Path("validation_artifacts/post_fine_tuning_validation/validation_metrics.csv")
TRAINING_COLUMNS = ("step_number", "epoch_number", "training_loss", "perplexity")
VALIDATION_COLUMNS = ("step_number", "epoch_number", "validation_loss", "perplexity")


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
        self._file: TextIO = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerows([list(columns), *kept])
        self._file.flush()

    def write(self, step: int, epoch: int, loss: float) -> None:
        self._writer.writerow([step, epoch, f"{loss:.6f}", f"{perplexity(loss):.6f}"])
        self._file.flush()

    def close(self) -> None:
        self._file.close()
