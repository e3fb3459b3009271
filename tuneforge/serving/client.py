"""Talk to a model worker process (tuneforge.inference.worker) from a process that must not import torch.

Many callers may stream from one worker at once: threads through `stream`/`generate`, coroutines of one event loop
through `astream`/`agenerate` (the server's request path, so that no thread waits on a stream). A reader thread
routes each answer line to the request it belongs to. If the worker dies, every request in flight fails at once
with ModelFailure (which callers may retry), none hangs.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import queue
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import numpy as np

from tuneforge import errors
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult
from tuneforge.inference.spec import WorkerSpec
from tuneforge.processes.executor import Executor
from tuneforge.processes.local import LOCAL
from tuneforge.processes.pipe import raise_error

_DEAD = {"event": "dead"}  # put on every waiting queue when the worker's stdout closes


@dataclass(frozen=True)
class WorkerInfo:
    load_seconds: float
    device: str
    dtype: str
    context_length: int
    dimension: int | None = None  # embedding workers: the vector size
    max_tokens: int | None = None  # embedding and reranker workers: word pieces read per text (or pair); longer is truncated


def _raise(payload: dict) -> None:
    raise_error(payload, default_message="the model worker failed")


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # one L2-normalized float32 row per text
    tokens: int  # word pieces the model read, over all texts


def _ends(event: dict) -> bool:
    """Whether the worker is done with the request after this answer (its result, its error, or its death)."""
    return event["event"] != "delta"


class _LoopSink:
    """Where the reader thread puts a coroutine's answers: onto its event loop, thread-safely."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

    def put(self, event: dict) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the loop has closed (server shutdown): nobody is waiting any more
            pass


class WorkerProcess:
    """One worker subprocess serving one model. Its stderr goes to this process's stderr (or `stderr`)."""

    def __init__(self, spec: WorkerSpec, *, env: dict[str, str] | None = None, stderr=None, executor: Executor = LOCAL) -> None:
        self.spec = spec
        self._ids = itertools.count(1)
        self._pending: dict[int, queue.Queue | _LoopSink] = {}
        self._lock = threading.Lock()
        self._proc = executor.spawn("tuneforge.inference.worker", ["--spec", spec.to_json()], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1, env=env, python=spec.python)
        ready = self._read_line()
        if ready.get("event") != "ready":
            self.close()
            _raise(ready)
        self.info = WorkerInfo(ready["load_seconds"], ready["device"], ready["dtype"], ready["context_length"],
                               ready.get("dimension"), ready.get("max_tokens"))
        self._reader = threading.Thread(target=self._route, name=f"worker-reader-{spec.model_id}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def pending(self) -> int:
        """Requests sent and not yet answered in full (queued in the worker or generating)."""
        with self._lock:
            return len(self._pending)

    def alive(self) -> bool:
        return self._proc.poll() is None and self._reader.is_alive()

    def _read_line(self) -> dict:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            return {"event": "error", "type": "ModelFailure",
                    "message": f"the model worker for {self.spec.model_id} exited with code {code} while loading; see its log"}
        return json.loads(line)

    def _route(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            event = json.loads(line)
            with self._lock:
                target = self._pending.get(event.get("id"))
            if target is not None:
                target.put(event)
        with self._lock:  # stdout closed: the worker is gone
            waiting = list(self._pending.values())
        for target in waiting:
            target.put(_DEAD)

    def stream(self, request: GenerationRequest) -> Iterator[Delta]:
        answers: queue.Queue = queue.Queue()
        rid = self._open(answers, {"request": request.to_dict(), "stream": True})
        finished = False
        try:
            while True:
                event = answers.get()
                finished = _ends(event)
                yield self._delta(event)
                if finished:
                    return
        finally:
            self._close(rid, finished)

    async def astream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """`stream` for a coroutine: awaits each answer on the running loop instead of holding a thread."""
        sink = _LoopSink()
        rid = self._open(sink, {"request": request.to_dict(), "stream": True})
        finished = False
        try:
            while True:
                event = await sink.queue.get()
                finished = _ends(event)
                yield self._delta(event)
                if finished:
                    return
        finally:
            self._close(rid, finished)

    def _open(self, sink: queue.Queue | _LoopSink, message: dict) -> int:
        """Send `message` under a new request id whose answers go to `sink`."""
        rid = next(self._ids)
        with self._lock:
            self._pending[rid] = sink
        try:
            self._send({"id": rid, **message})
        except BaseException:
            self._forget(rid)
            raise
        return rid

    def _forget(self, rid: int) -> None:
        with self._lock:
            self._pending.pop(rid, None)

    def _delta(self, event: dict) -> Delta:
        """One answer line as a delta (the last one carries the result); the worker's errors are raised."""
        if event["event"] == "delta":
            return Delta(event["text"])
        if event["event"] == "done":
            return Delta("", GenerationResult.from_dict(event["result"]))
        if event is _DEAD:
            raise errors.ModelFailure(
                f"the model worker for {self.spec.model_id} stopped while answering (exit code "
                f"{self._proc.poll()}); the request can be retried"
            )
        _raise(event)
        raise AssertionError("unreachable")  # _raise always raises

    def _close(self, rid: int, finished: bool) -> None:
        self._forget(rid)
        if not finished:  # the caller went away mid-stream: free the batch slot
            self._send({"id": rid, "op": "cancel"}, quiet=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalized float32 embeddings, one row per text (embedding workers only)."""
        answers: queue.Queue = queue.Queue()
        rid = self._open(answers, {"op": "embed", "texts": list(texts)})
        try:
            event = answers.get()
        finally:
            self._forget(rid)
        return self._embedded(event).vectors

    async def aembed(self, texts: list[str]) -> Embedded:
        """`embed` for a coroutine, with the number of word pieces the model read (what OpenAI's usage reports)."""
        sink = _LoopSink()
        rid = self._open(sink, {"op": "embed", "texts": list(texts), "count_tokens": True})
        try:
            event = await sink.queue.get()
        finally:
            self._forget(rid)
        return self._embedded(event)

    def rerank(self, query: str, documents: list[str]) -> list[float]:
        """The relevance score of each document to `query`, in order (reranker workers only)."""
        answers: queue.Queue = queue.Queue()
        rid = self._open(answers, {"op": "rerank", "query": query, "documents": list(documents)})
        try:
            event = answers.get()
        finally:
            self._forget(rid)
        if event is _DEAD:
            raise errors.ModelFailure(
                f"the reranker worker for {self.spec.model_id} stopped while answering (exit code {self._proc.poll()}); "
                "the request can be retried"
            )
        if event["event"] != "done":
            _raise(event)
        return [float(score) for score in event["result"]["scores"]]

    def _embedded(self, event: dict) -> Embedded:
        if event is _DEAD:
            raise errors.ModelFailure(
                f"the embedding worker for {self.spec.model_id} stopped while answering (exit code {self._proc.poll()}); "
                "the request can be retried"
            )
        if event["event"] != "done":
            _raise(event)
        result = event["result"]
        vectors = np.frombuffer(base64.b64decode(result["vectors"]), dtype=np.float32).reshape(result["shape"])
        return Embedded(vectors, int(result.get("tokens", 0)))

    def _send(self, payload: dict, *, quiet: bool = False) -> None:
        try:
            with self._lock:
                assert self._proc.stdin is not None
                self._proc.stdin.write(json.dumps(payload) + "\n")
                self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            if not quiet:
                raise errors.ModelFailure(f"the model worker for {self.spec.model_id} is not running; the request can be retried") from None

    def generate(self, request: GenerationRequest) -> GenerationResult:
        for delta in self.stream(request):
            if delta.result is not None:
                return delta.result
        raise errors.ModelFailure("the model worker ended the stream without a result")

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        async for delta in self.astream(request):
            if delta.result is not None:
                return delta.result
        raise errors.ModelFailure("the model worker ended the stream without a result")

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                if self._proc.stdin:
                    self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def kill(self) -> None:
        self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
