"""The local executor: detached and child processes on this host. No torch here: the processes import it.

A detached process runs as `python -m MODULE ARGUMENT` in a new session (process group), detached from the
caller, so it outlives the CLI that started it and can be stopped with its whole process tree. Its
stdout/stderr go to `<work_dir>/job.log`. A process is identified by pid *and* start time, so a reused pid
after a reboot is never mistaken for the job. The start time (psutil's create_time) is the boot time plus the
process's age in clock ticks, and the boot time the kernel reports moves when the wall clock is adjusted (NTP
slews it by seconds over hours): a start time off by more than a second is still the same process when it is
within CLOCK_SLACK_SECONDS and the process is one of tuneforge's. Without that, a reconcile an hour into a job
once took the live job for dead and started a second process for it. A child process runs as `python -m MODULE ARGS...` with the
pipes its caller asks for, and ends with its caller (model workers, evaluation).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from tuneforge.processes.environment import torch_env
from tuneforge.processes.executor import ProcessHandle

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds the tuneforge package

LOG_NAME = "job.log"
CLOCK_SLACK_SECONDS = 120.0


def _same_process(proc: psutil.Process, started_at: float) -> bool:
    drift = abs(proc.create_time() - started_at)
    if drift <= 1.0:
        return True
    return drift <= CLOCK_SLACK_SECONDS and any("tuneforge" in part for part in proc.cmdline())


RAY_SUBMISSION_ENV = "TUNEFORGE_RAY_SUBMISSION_ID"  # set by tuneforge.processes.ray in the processes it submits


def this_process() -> ProcessHandle:
    """The handle of the calling process, for a detached process to record in its row. A process submitted as a Ray
    Job records its submission as its host (`ray:<id>`), which is how any later process asks the cluster about it."""
    submission = os.environ.get(RAY_SUBMISSION_ENV)
    return ProcessHandle(os.getpid(), psutil.Process().create_time(), f"ray:{submission}" if submission else socket.gethostname())


class LocalExecutor:
    """tuneforge.processes.executor.Executor for processes on this host."""

    def start(self, module: str, argument: str, work_dir: Path, *, env: dict[str, str] | None = None,
              run_id: str | None = None) -> ProcessHandle:
        work_dir.mkdir(parents=True, exist_ok=True)
        with open(work_dir / LOG_NAME, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, argument],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: survives the caller, stopped as a tree
                env=torch_env({**(env or {}), "PYTHONUNBUFFERED": "1"}),
                close_fds=True,
            )
        return ProcessHandle(proc.pid, psutil.Process(proc.pid).create_time(), socket.gethostname())

    def is_alive(self, pid: int | None, started_at: float | None, host: str | None) -> bool | None:
        if pid is None:
            return False
        if host and host != socket.gethostname():
            return None
        try:
            proc = psutil.Process(pid)
            if started_at is not None and not _same_process(proc, started_at):
                return False  # the pid was reused by another process
            return proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def signal_stop(self, pid: int, started_at: float | None, host: str | None = None) -> None:
        if self.is_alive(pid, started_at, host):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def terminate_tree(self, pid: int, started_at: float | None, *, grace_seconds: float, host: str | None = None) -> bool:
        """SIGTERM the process group, wait up to `grace_seconds`, then SIGKILL what is left."""
        alive = self.is_alive(pid, started_at, host)
        if alive is not True:  # gone (done), or on a host this executor cannot reach (not done)
            return alive is False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return True
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
        for _ in range(50):
            if not _group_alive(pid):
                return True
            time.sleep(0.1)
        return not _group_alive(pid)

    def spawn(self, module: str, args: Sequence[str], *, stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
              stderr: int | IO[Any] | None = None, env: dict[str, str] | None = None, text: bool = True,
              bufsize: int = -1, python: str | None = None) -> subprocess.Popen:
        environment = torch_env(env)
        if python is not None:  # another environment: it finds this tuneforge by its source directory
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), environment.get("PYTHONPATH")]))
        return subprocess.Popen([python or sys.executable, "-m", module, *args], stdin=stdin, stdout=stdout, stderr=stderr,
                                text=text, bufsize=bufsize, env=environment)


LOCAL = LocalExecutor()  # the executor services use unless they are given another


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return False
