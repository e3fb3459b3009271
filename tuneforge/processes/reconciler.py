"""A long-running process's watch over the detached processes it started: every few seconds, each service's
`reconcile()` closes or restarts the rows whose process is gone.

Without it a server would notice a dead job only when it is next started: a job killed by the OOM killer, or stopped
by a SIGTERM that arrived before its process could handle one, would read InProgress or Stopping until then.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Sequence

RECONCILE_SECONDS = 10.0


class Reconciler:
    def __init__(self, checks: Sequence[Callable[[], object]], *, interval: float = RECONCILE_SECONDS) -> None:
        self.checks = tuple(checks)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-reconciler", daemon=True)

    def start(self) -> "Reconciler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for check in self.checks:
                try:
                    check()
                except Exception:  # a database hiccup must not end the watch: the next round tries again
                    traceback.print_exc()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
