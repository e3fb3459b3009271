"""JSON lines between a parent and its child process (model workers, evaluation), and errors carried in them.

The child writes one JSON object per line on stdout (`LineWriter`, whole lines even from several threads); an
error is `{"event": "error", "type", "message", "field"}` (`error_event`), where `type` names a class of the
exception tree (tuneforge.errors) and anything else becomes ModelFailure. The parent turns such a line back into
the same exception (`raise_error`), so a caller sees InvalidInput, Throttled, ... as if raised in its process.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from typing import IO, Any, NoReturn

from tuneforge import errors

ERRORS: dict[str, type[errors.TuneforgeError]] = {name: getattr(errors, name) for name in errors.__all__}


class LineWriter:
    """A stream shared by threads: one whole JSON line at a time."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload) + "\n"
        with self.lock:
            self.stream.write(line)
            self.stream.flush()


def error_event(exc: BaseException, *, log: IO[str] | None = None) -> dict[str, Any]:
    """The error line for `exc`. An exception outside the tree is a bug: its traceback goes to `log` (stderr)."""
    if isinstance(exc, errors.TuneforgeError):
        return {"event": "error", "type": type(exc).__name__, "message": exc.message, "field": exc.field}
    traceback.print_exception(exc, file=log or sys.stderr)
    return {"event": "error", "type": "ModelFailure", "message": f"{type(exc).__name__}: {exc}", "field": None}


def raise_error(event: dict[str, Any], *, default_message: str) -> NoReturn:
    """Raise the exception an error line carries (ModelFailure for an unknown type)."""
    cls = ERRORS.get(event.get("type"), errors.ModelFailure)
    raise cls(event.get("message") or default_message, field=event.get("field"))
