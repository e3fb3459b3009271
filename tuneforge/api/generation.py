"""The server's side of one generation, shared by Bedrock's runtime and the OpenAI routes, on the event loop.

    worker = await resolve(s, model_id)                # which worker serves it (a database lookup, off the loop)
    result = await worker.agenerate(request)           # tokens counted in the metrics
    deltas = await started(worker.astream(request))    # returns once the first delta is there

No thread is held while a request waits on its model: a stream costs a coroutine, not one of the thread pool's
40 threads (bench/concurrent_streams.py measures what that changes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from tuneforge.api.metrics import ApiMetrics
from tuneforge.api.services import Services
from tuneforge.catalog.entries import BodyFormat
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult
from tuneforge.serving.client import WorkerProcess


class MeteredWorker:
    """A worker whose finished generations are counted in the token metrics (streams count at their end)."""

    def __init__(self, worker: WorkerProcess, metrics: ApiMetrics, model: str) -> None:
        self.worker = worker
        self.metrics = metrics
        self.model = model

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """For handlers that run in a thread anyway (RetrieveAndGenerate: retrieval and its turns are blocking)."""
        result = self.worker.generate(request)
        self.metrics.count_tokens(self.model, result)
        return result

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        result = await self.worker.agenerate(request)
        self.metrics.count_tokens(self.model, result)
        return result

    async def astream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        deltas = self.worker.astream(request)
        try:
            async for delta in deltas:
                if delta.result is not None:
                    self.metrics.count_tokens(self.model, delta.result)
                yield delta
        finally:
            await deltas.aclose()  # at once, not when collected: it frees the worker's batch slot


async def resolve(s: Services, model_id: str, *, field: str = "modelId",
                  custom_on_demand: bool = False) -> tuple[MeteredWorker, BodyFormat | None]:
    """The worker serving `model_id` and the body family it speaks (None: either, by the body). `custom_on_demand`:
    a custom model named directly is served on demand (OpenAI's fine_tuned_model) instead of refused (Bedrock's).

    In a thread: the lookup reads the database, and a model loading on first use is waited for there."""
    return await run_in_threadpool(_resolve, s, model_id, field, custom_on_demand)


def resolve_blocking(s: Services, model_id: str, *, field: str = "modelId") -> MeteredWorker:
    """`resolve` for code already in a thread."""
    return _resolve(s, model_id, field)[0]


def _resolve(s: Services, model_id: str, field: str, custom_on_demand: bool = False) -> tuple[MeteredWorker, BodyFormat | None]:
    found = s.resolver.target(model_id, field=field, custom_on_demand=custom_on_demand)
    return MeteredWorker(found.worker, s.metrics, found.model_id), found.body_format


async def started(deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """Wait for the first delta before answering, so an error in starting is an HTTP error, not a stream event."""
    first = await anext(deltas)

    async def chain() -> AsyncIterator[Delta]:
        try:
            yield first
            async for delta in deltas:
                yield delta
        finally:
            await deltas.aclose()

    return chain()
