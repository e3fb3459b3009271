"""Detached processes (customization jobs, ingestion jobs), both sides: the job's own process and its reconcilers.

In the job's process (`python -m tuneforge.jobs.process JOB_ID`, `python -m tuneforge.knowledge.ingest_process
JOB_ID`), `main` reads top to bottom:

    job = IngestionProcess(job_id)            # has stop_requested, run(), stopped(exc), failed(message)
    return run_detached(job, name=f"ingestion job {job_id}", log_path=..., stop=(SyncStopped,))

SIGTERM (Stop...Job) sets `job.stop_requested`; the job checks it between steps and raises one of `stop`, which
ends it through `job.stopped`. A TuneforgeError ends it through `job.failed` with its message, anything else
with "internal error" and a pointer to its log, so a job is never left running in its row. The job records
`this_process()` in its row and writes its progress when `Heartbeat.due()`.

In any other process (the service that reconciles after a restart), `presumed_alive(row, executor)` says
whether the process a row names still runs; a row whose process is gone is restarted or closed by its service.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from tuneforge.db import utcnow
from tuneforge.errors import TuneforgeError
from tuneforge.processes.executor import Executor
from tuneforge.processes.local import this_process

STARTING_GRACE_SECONDS = 60.0  # a row without a pid this fresh is being started, not dead
STOP_GRACE_SECONDS = 10.0  # a job gets this long to checkpoint and exit before it is killed
OTHER_HOST_TRUST = timedelta(minutes=10)  # a process on another host is alive while its heartbeat is this fresh

__all__ = ["STARTING_GRACE_SECONDS", "STOP_GRACE_SECONDS", "Heartbeat", "presumed_alive", "run_detached", "this_process"]


class ProcessRecord(Protocol):
    """The process columns of a job row (CustomizationJobRow, IngestionJobRow)."""

    pid: int | None
    pid_started_at: float | None
    host: str | None
    heartbeat_at: datetime | None


def presumed_alive(row: ProcessRecord, executor: Executor, *, now: datetime | None = None) -> bool:
    """Whether the row's process runs: asked of the executor; a row created or restarted a moment ago counts as
    alive (its process is being started); on another host, its heartbeat decides."""
    now = now or utcnow()
    alive = executor.is_alive(row.pid, row.pid_started_at, row.host)
    if row.pid is None and row.heartbeat_at is not None and now - row.heartbeat_at < timedelta(seconds=STARTING_GRACE_SECONDS):
        alive = True
    if alive is None:
        alive = row.heartbeat_at is not None and now - row.heartbeat_at < OTHER_HOST_TRUST
    return alive


class Heartbeat:
    """When a job writes its progress and heartbeat to its row: at most every `every_seconds`, or when forced."""

    def __init__(self, every_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self._clock = clock
        self._last = 0.0

    def due(self, *, force: bool = False) -> bool:
        now = self._clock()
        if force or now - self._last >= self.every_seconds:
            self._last = now
            return True
        return False


class DetachedJob(Protocol):
    stop_requested: bool

    def run(self) -> None: ...

    def stopped(self, exc: BaseException) -> None: ...

    def failed(self, message: str) -> None: ...


def run_detached(job: DetachedJob, *, name: str, log_path: Path, stop: tuple[type[BaseException], ...],
                 out_of_memory: str = "the process ran out of memory") -> int:
    """Run a detached job to its end and record how it ended. Returns the process's exit code."""

    def on_term(_signum, _frame) -> None:
        job.stop_requested = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        job.run()
        return 0
    except stop as exc:
        job.stopped(exc)
        print(f"{name} stopped", flush=True)
        return 0
    except TuneforgeError as exc:
        job.failed(exc.message)
        print(f"{name} failed: {exc.message}", flush=True)
        return 1
    except MemoryError:
        job.failed(out_of_memory)
        return 1
    except Exception as exc:  # anything else: fail with a pointer to the log, never leave the job running in its row
        traceback.print_exc()
        job.failed(f"internal error ({type(exc).__name__}: {exc}); the full trace is in {log_path}")
        return 1
