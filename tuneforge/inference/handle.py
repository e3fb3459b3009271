"""A submitted request as an engine hands it back: iterate its deltas, wait for its result, cancel it.

Shared by the engines (the built-in batch engine, vLLM's): each engine's scheduler thread puts deltas and errors,
one consumer thread iterates. No torch here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from tuneforge.errors import ModelFailure, Throttled, TuneforgeError
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult

_END = object()  # queue sentinel: the stream ends without a result (cancelled)


class RequestHandle:
    """One submitted request. Iterate it once for its `Delta`s; the last delta carries the `GenerationResult`.

    An error for this request (bad prompt, engine closed or failed) is raised while iterating. After
    `cancel()` the iteration ends without a result and the engine frees the request's slot before its next
    decode step. Thread-safe: the scheduler thread puts, one consumer thread iterates.
    """

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.submitted_at = time.perf_counter()
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._terminal: object | None = None  # what ended the stream, so a second iteration ends the same way

    def __iter__(self) -> Iterator[Delta]:
        while self._terminal is None:
            item = self._items.get()
            if item is _END or isinstance(item, BaseException):
                self._terminal = item
                break
            yield item
            if item.result is not None:
                self._terminal = item
        if isinstance(self._terminal, BaseException):
            raise self._terminal

    def result(self) -> GenerationResult:
        """Wait for the request to finish and return its result (raises its error; ModelFailure if cancelled)."""
        result = None
        for delta in self:
            result = delta.result
        if result is None:
            raise ModelFailure("the request was cancelled before it finished: submit it again for a result")
        return result

    def cancel(self) -> None:
        self._cancelled.set()
        self._items.put(_END)  # ends the consumer's iteration now, not at the scheduler's next step

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # ---- called by the scheduler thread ---------------------------------------------------------
    def _put(self, delta: Delta) -> None:
        self._items.put(delta)

    def _fail(self, error: TuneforgeError) -> None:
        self._items.put(error)


def queue_full(waiting: int, max_queue: int) -> Throttled:
    """What an engine answers a request beyond its queue (back-pressure: a 429 the client retries)."""
    return Throttled(f"{waiting} requests are already waiting for this model (max_queue={max_queue}): "
                     "retry later, or provision more throughput")
