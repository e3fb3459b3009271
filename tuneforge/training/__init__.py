"""Training engine for customization jobs: hyperparameters, data, the training loop, Bedrock's metric files.

`train()` runs inside a job's subprocess. The API process may import this package to check hyperparameters
(`parse_hyperparameters`) without importing torch: the torch-backed names (data, trainer) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from tuneforge.training.hparams import Family, Hyperparameters, Method, parse_hyperparameters
from tuneforge.training.metrics import TRAINING_CSV, VALIDATION_CSV, MetricsCsv

_LAZY = {  # name -> module under tuneforge.training; these import torch
    "IGNORE": "data", "Batch": "data", "Example": "data", "chat_example": "data", "collate": "data",
    "epoch_batches": "data", "fine_tuning_examples": "data", "forward_chunks": "data", "pretraining_rows": "data",
    "prompt_completion_example": "data",
    "ARTIFACT_FILE": "trainer", "StepMetrics": "trainer", "TrainConfig": "trainer", "TrainResult": "trainer",
    "TOKENS_PER_FORWARD": "trainer", "latest_checkpoint": "trainer", "train": "trainer",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tuneforge.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tuneforge.training.{_LAZY[name]}"), name)


__all__ = [
    "ARTIFACT_FILE",
    "IGNORE",
    "TOKENS_PER_FORWARD",
    "TRAINING_CSV",
    "VALIDATION_CSV",
    "Batch",
    "Example",
    "Family",
    "Hyperparameters",
    "Method",
    "MetricsCsv",
    "StepMetrics",
    "TrainConfig",
    "TrainResult",
    "chat_example",
    "collate",
    "epoch_batches",
    "fine_tuning_examples",
    "forward_chunks",
    "latest_checkpoint",
    "parse_hyperparameters",
    "pretraining_rows",
    "prompt_completion_example",
    "train",
]
