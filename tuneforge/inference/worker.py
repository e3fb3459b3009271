"""A model worker process: loads one model and answers generation requests as JSON lines.

    python -m tuneforge.inference.worker --spec '{"checkpoint": "...", ...}'

Protocol (one JSON object per line): the worker first prints {"event": "ready", ...} (or "error") on stdout.
Each request {"id", "request": GenerationRequest.to_dict(), "stream": bool} is answered by zero or more
{"id", "event": "delta", "text"} lines and one {"id", "event": "done", "result"} or
{"id", "event": "error", "type", "message", "field"} line. Logs and progress go to stderr.

Keeping the model in its own process keeps torch out of the API and CLI processes, and a crash here
cannot take them down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from tuneforge.errors import TuneforgeError
from tuneforge.inference.params import GenerationRequest
from tuneforge.inference.spec import WorkerSpec


def _send(out, payload: dict) -> None:
    out.write(json.dumps(payload) + "\n")
    out.flush()


def _error_payload(exc: BaseException) -> dict:
    if isinstance(exc, TuneforgeError):
        return {"event": "error", "type": type(exc).__name__, "message": exc.message, "field": exc.field}
    return {"event": "error", "type": "ModelFailure", "message": f"{type(exc).__name__}: {exc}", "field": None}


def load_engine(spec: WorkerSpec):
    from tuneforge.inference.engine import LocalEngine

    checkpoint = Path(spec.checkpoint)
    if spec.gguf:
        from tuneforge.catalog.materialize import materialize_gguf

        materialize_gguf(Path(spec.gguf), checkpoint)
    return LocalEngine(checkpoint, device=spec.device, dtype=spec.dtype, adapter=Path(spec.adapter) if spec.adapter else None)


def serve(spec: WorkerSpec, stdin=sys.stdin, stdout=sys.stdout) -> int:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    started = time.perf_counter()
    try:
        engine = load_engine(spec)
    except BaseException as exc:  # report why loading failed, then exit non-zero
        _send(stdout, _error_payload(exc))
        if not isinstance(exc, TuneforgeError):
            traceback.print_exc(file=sys.stderr)
        return 1
    _send(stdout, {
        "event": "ready", "load_seconds": round(time.perf_counter() - started, 3),
        "device": str(engine.device), "dtype": str(engine.dtype).removeprefix("torch."),
        "context_length": engine.context_length,
    })
    for line in stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        rid = message.get("id")
        try:
            request = GenerationRequest.from_dict(message["request"])
            if message.get("stream"):
                for delta in engine.stream(request):
                    if delta.text:
                        _send(stdout, {"id": rid, "event": "delta", "text": delta.text})
                    if delta.result is not None:
                        _send(stdout, {"id": rid, "event": "done", "result": asdict(delta.result)})
            else:
                _send(stdout, {"id": rid, "event": "done", "result": asdict(engine.generate(request))})
        except Exception as exc:  # one bad request must not end the worker
            _send(stdout, {"id": rid, **_error_payload(exc)})
            if not isinstance(exc, TuneforgeError):
                traceback.print_exc(file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="WorkerSpec as JSON")
    args = parser.parse_args(argv)
    return serve(WorkerSpec.from_json(args.spec))


if __name__ == "__main__":
    sys.exit(main())
