"""Customization data sets: the formats, a streaming validator run before training, and the record reader
the trainer uses. See `tuneforge.data.validate` for usage and limits."""

from __future__ import annotations

from tuneforge.data.records import CHAT_TOKENS_PER_MESSAGE, DatasetKind, Problem
from tuneforge.data.validate import (
    DataLimits,
    TokenCounter,
    ValidationReport,
    check_combined,
    load_token_counter,
    read_records,
    validate_dataset,
)

__all__ = [
    "CHAT_TOKENS_PER_MESSAGE",
    "DatasetKind",
    "Problem",
    "DataLimits",
    "TokenCounter",
    "ValidationReport",
    "check_combined",
    "load_token_counter",
    "read_records",
    "validate_dataset",
]
