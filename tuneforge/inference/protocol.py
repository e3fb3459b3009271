"""The `Engine` protocol: what a worker process serves generation with, whichever engine runs the model.

    engine = load_engine(spec)                       # tuneforge.inference.worker, by `spec.engine`
    handle = engine.submit(request)                  # at once: Throttled when full, InvalidInput for a bad request
    for delta in handle: ...                         # streamed text; the last delta carries the GenerationResult
    handle.cancel()                                  # the caller left: free its place in the batch
    engine.close()

The built-in engine (`batch_engine.BatchEngine`, continuous batching over transformers) implements it; an
engine backed by vLLM implements the same, so the worker, the pipe protocol and everything on the parent side
stay as they are. No torch here: the protocol is plain typing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult


@runtime_checkable
class Generation(Protocol):
    """One submitted request. Iterated once; its error is raised while iterating."""

    def __iter__(self) -> Iterator[Delta]: ...

    def result(self) -> GenerationResult:
        """Wait for the end and return the result (ModelFailure if it was cancelled)."""
        ...

    def cancel(self) -> None:
        """End the iteration now and free the request's place before the engine's next step."""
        ...


@runtime_checkable
class Engine(Protocol):
    device: Any  # where the model runs, as the worker reports it ("cpu", "cuda:0")
    dtype: Any  # the weights' dtype, reported as its name ("float32", "bfloat16")
    context_length: int  # prompt plus generated tokens, at most
    max_batch_size: int  # sequences decoded together; callers size their windows of requests by it

    def submit(self, request: GenerationRequest) -> Generation:
        """Queue a request and return at once; raises Throttled beyond the engine's queue, InvalidInput for a
        request it cannot serve (a prompt longer than the context)."""
        ...

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Submit and wait (blocking)."""
        ...

    def close(self) -> None:
        """Fail what is still queued or running and release the model."""
        ...
