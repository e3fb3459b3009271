"""Start, find and stop job processes. No torch here: the job process itself imports it.

A job runs as `python -m tuneforge.jobs.process JOB_ID` in a new session (process group), detached from
the caller, so it outlives the CLI that started it and can be stopped with its whole process tree.
Its stdout/stderr go to `<work_dir>/job.log`. A process is identified by pid *and* start time, so a
reused pid after a reboot is never mistaken for the job.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tuneforge.processes import torch_env

LOG_NAME = "job.log"


@dataclass(frozen=True)
class ProcessHandle:
    pid: int
    started_at: float  # psutil create_time
    host: str


def start(job_id: str, work_dir: Path, *, env: dict[str, str] | None = None, module: str = "tuneforge.jobs.process") -> ProcessHandle:
    """Run `python -m module job_id` detached (customization jobs by default; knowledge-base ingestion too)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / LOG_NAME, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, job_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: survives the caller, stopped as a tree
            env=torch_env({**(env or {}), "PYTHONUNBUFFERED": "1"}),
            close_fds=True,
        )
    return ProcessHandle(proc.pid, psutil.Process(proc.pid).create_time(), socket.gethostname())


def this_process() -> ProcessHandle:
    return ProcessHandle(os.getpid(), psutil.Process().create_time(), socket.gethostname())


def is_alive(pid: int | None, started_at: float | None, host: str | None) -> bool | None:
    """True/False for a process on this host; None when it runs on another host (we cannot tell)."""
    if pid is None:
        return False
    if host and host != socket.gethostname():
        return None
    try:
        proc = psutil.Process(pid)
        if started_at is not None and abs(proc.create_time() - started_at) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def signal_stop(pid: int, started_at: float | None) -> None:
    """Ask a job to stop (it checkpoints and exits) without waiting."""
    if is_alive(pid, started_at, None):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def terminate_tree(pid: int, started_at: float | None, *, grace_seconds: float) -> bool:
    """SIGTERM the job's process group, wait up to `grace_seconds`, then SIGKILL what is left.

    Returns True once no process of the group is left.
    """
    if not is_alive(pid, started_at, None):
        return True
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


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return False
