"""Run an evaluation job in its own process (tuneforge.evaluation.run) from a process that must not import torch.

The job goes to the child's stdin as JSON; its events come back as JSON lines and are handed to `on_event` as
they arrive (progress bars); results are returned per model. The child's log (stderr) is kept in a temporary
file and its tail is quoted if the child fails without reporting why.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

from tuneforge import errors
from tuneforge.processes.local import LOCAL
from tuneforge.processes.pipe import raise_error

Event = dict[str, Any]
LOG_TAIL_LINES = 8


def run_job(job: dict[str, Any], *, on_event: Callable[[Event], None] | None = None,
            env: dict[str, str] | None = None) -> list[Event]:
    """The "result" event of each model, in order. Raises the child's error (InvalidInput, ModelFailure, ...)."""
    results: dict[int, Event] = {}
    with tempfile.TemporaryFile("w+") as log:
        proc = LOCAL.spawn("tuneforge.evaluation.run", [], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env)
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            failure: Event | None = None
            for line in proc.stdout:
                event = json.loads(line)
                if event["event"] == "result":
                    results[event["model"]] = event
                elif event["event"] == "error":
                    failure = event
                if on_event is not None:
                    on_event(event)
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C): do not leave the model process running
                proc.kill()
                proc.wait()
        if failure is not None:
            raise_error(failure, default_message="the evaluation process failed")
        if code != 0 or len(results) != len(job["models"]):
            log.seek(0)
            tail = "\n".join(log.read().strip().splitlines()[-LOG_TAIL_LINES:])
            raise errors.ModelFailure(f"the evaluation process exited with code {code} after {len(results)} of "
                                      f"{len(job['models'])} model(s); its log ends:\n{tail}")
    return [results[i] for i in range(len(job["models"]))]
