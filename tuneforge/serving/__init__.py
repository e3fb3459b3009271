"""Serving many requests on one model: continuous batching for provisioned throughput.

The engine imports torch, which the API process must never load (it talks to worker processes), so the
names below are imported on first use rather than when this package is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneforge.serving.batch_engine import BatchEngine, RequestHandle

__all__ = ["BatchEngine", "RequestHandle"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from tuneforge.serving import batch_engine

        return getattr(batch_engine, name)
    raise AttributeError(f"module 'tuneforge.serving' has no attribute {name!r}")
