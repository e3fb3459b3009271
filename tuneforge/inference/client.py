"""Talk to a model worker process (tuneforge.inference.worker) from a process that must not import torch."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from tuneforge import errors
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult
from tuneforge.inference.spec import WorkerSpec

_ERRORS = {name: getattr(errors, name) for name in errors.__all__}


@dataclass(frozen=True)
class WorkerInfo:
    load_seconds: float
    device: str
    dtype: str
    context_length: int


def _raise(payload: dict) -> None:
    cls = _ERRORS.get(payload.get("type"), errors.ModelFailure)
    raise cls(payload.get("message") or "the model worker failed", field=payload.get("field"))


class WorkerProcess:
    """One worker subprocess serving one model; requests are answered one at a time.

    Its stderr (loading progress, tracebacks) goes to this process's stderr so the user sees it.
    """

    def __init__(self, spec: WorkerSpec, *, env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self._ids = itertools.count(1)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tuneforge.inference.worker", "--spec", spec.to_json()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env={**os.environ, **(env or {})},
        )
        ready = self._read()
        if ready.get("event") != "ready":
            self.close()
            _raise(ready)
        self.info = WorkerInfo(ready["load_seconds"], ready["device"], ready["dtype"], ready["context_length"])

    def _read(self) -> dict:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            raise errors.ModelFailure(
                f"the model worker for {self.spec.model_id} exited with code {code}; see the output above, then retry"
            )
        return json.loads(line)

    def stream(self, request: GenerationRequest) -> Iterator[Delta]:
        rid = next(self._ids)
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"id": rid, "request": request.to_dict(), "stream": True}) + "\n")
        self._proc.stdin.flush()
        while True:
            event = self._read()
            if event["event"] == "delta":
                yield Delta(event["text"])
            elif event["event"] == "done":
                yield Delta("", GenerationResult.from_dict(event["result"]))
                return
            else:
                _raise(event)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        for delta in self.stream(request):
            if delta.result is not None:
                return delta.result
        raise errors.ModelFailure("the model worker ended the stream without a result")

    def close(self) -> None:
        if self._proc.poll() is None:
            if self._proc.stdin:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
