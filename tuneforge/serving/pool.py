"""The server's model workers, by key: loaded on first use, reused, unloaded when idle.

Backs on-demand invocation of base models (Bedrock allows InvokeModel on a foundation model id). A request
that finds its model loading waits for it up to `load_timeout` seconds, then gets ModelNotReady (a 429 that
boto3 retries). A worker that died is replaced on the next request; the requests it was serving fail with a
retryable ModelFailure. No torch here: each worker is its own process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from tuneforge.errors import ModelNotReady
from tuneforge.inference.spec import Capacity, WorkerSpec
from tuneforge.serving.client import WorkerProcess

REAP_EVERY_SECONDS = 15.0


class WorkerPool:
    def __init__(self, *, idle_seconds: float = 900.0, load_timeout: float = 120.0, capacity: Capacity | None = None,
                 release: Callable[[WorkerSpec], None] | None = None) -> None:
        self.capacity = capacity
        self.release = release  # called with each spec once its worker has loaded it (or failed to)
        self.idle_seconds = idle_seconds
        self.load_timeout = load_timeout
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerProcess] = {}
        self._loading: dict[str, Future] = {}
        self._last_used: dict[str, float] = {}
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="worker-pool-reaper", daemon=True)
        self._reaper.start()

    def get(self, key: str, spec: Callable[[], WorkerSpec]) -> WorkerProcess:
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and worker.alive():
                self._last_used[key] = time.monotonic()
                return worker
            if worker is not None:  # it died: drop it and load a fresh one
                self._workers.pop(key, None)
            future = self._loading.get(key)
            if future is None:
                future = Future()
                self._loading[key] = future
                threading.Thread(target=self._load, args=(key, spec, future), name=f"load-{key}", daemon=True).start()
        try:
            return future.result(timeout=self.load_timeout)
        except TimeoutError:
            raise ModelNotReady(f"model {key} is still loading: retry in a few seconds") from None

    def _load(self, key: str, spec: Callable[[], WorkerSpec], future: Future) -> None:
        try:
            loaded = spec()
            try:
                worker = WorkerProcess(self.capacity.apply(loaded) if self.capacity else loaded)
            finally:
                if self.release is not None:
                    self.release(loaded)
        except BaseException as exc:  # handed to every waiting request
            with self._lock:
                self._loading.pop(key, None)
            future.set_exception(exc)
            return
        with self._lock:
            self._workers[key] = worker
            self._last_used[key] = time.monotonic()
            self._loading.pop(key, None)
        future.set_result(worker)

    def loaded(self) -> dict[str, WorkerProcess]:
        with self._lock:
            return dict(self._workers)

    def unload(self, key: str) -> None:
        with self._lock:
            worker = self._workers.pop(key, None)
        if worker is not None:
            worker.close()

    def _reap(self) -> None:
        while not self._closed.wait(REAP_EVERY_SECONDS):
            now = time.monotonic()
            with self._lock:
                idle = [k for k in self._workers if now - self._last_used.get(k, now) > self.idle_seconds]
            for key in idle:
                self.unload(key)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()
