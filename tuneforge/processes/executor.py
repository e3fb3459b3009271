"""The Executor protocol: how tuneforge starts, watches and stops its processes, wherever they run.

Two kinds of process go through it:
- detached processes (customization jobs, ingestion jobs): `start` runs `python -m MODULE ARGUMENT` so that it
  outlives its caller; the caller records the ProcessHandle (pid, start time, host) in the job's row, and any
  later process asks `is_alive` about it, `signal_stop`s it or `terminate_tree`s it;
- child processes (model workers, evaluation): `spawn` runs `python -m MODULE ARGS...` with pipes to its
  caller, which talks to it in JSON lines (tuneforge.processes.pipe) and ends it by closing its stdin.
Both get the process environment of tuneforge.processes.environment.

Two implementations: tuneforge.processes.local.LocalExecutor (processes on this host, the default) and
tuneforge.processes.ray.RayExecutor (detached processes as Ray Jobs on a cluster, TUNEFORGE_EXECUTOR=ray; its
child processes stay local to the process that spawns them). `executor_for(settings)` picks one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol


@dataclass(frozen=True)
class ProcessHandle:
    """A detached process, as its job row records it. Pid *and* start time, so a reused pid is never taken for it."""

    pid: int
    started_at: float  # psutil create_time
    host: str


class Executor(Protocol):
    def start(self, module: str, argument: str, work_dir: Path, *, env: dict[str, str] | None = None,
              run_id: str | None = None) -> ProcessHandle:
        """Run `python -m module argument` detached, its output appended to `work_dir`/LOG_NAME. `run_id` names this
        run (a job id and its attempt): a cluster executor submits each run id once, however often it is asked."""
        ...

    def is_alive(self, pid: int | None, started_at: float | None, host: str | None) -> bool | None:
        """True/False when the executor can tell; None when it cannot (a process on another host)."""
        ...

    def signal_stop(self, pid: int, started_at: float | None, host: str | None = None) -> None:
        """Ask a detached process to stop (SIGTERM: it finishes its step and exits) without waiting."""
        ...

    def terminate_tree(self, pid: int, started_at: float | None, *, grace_seconds: float, host: str | None = None) -> bool:
        """Stop a detached process and its children: ask, wait `grace_seconds`, then kill. True once none is left."""
        ...

    def spawn(self, module: str, args: Sequence[str], *, stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
              stderr: int | IO[Any] | None = None, env: dict[str, str] | None = None, text: bool = True,
              bufsize: int = -1, python: str | None = None) -> subprocess.Popen:
        """Run `python -m module args...` as a child of this process, with the pipes asked for (`python`: another
        interpreter than this one, e.g. an environment that has vLLM)."""
        ...
