"""The Ray executor: detached processes (customization and ingestion jobs) as Ray Jobs on a cluster.

It talks to the cluster through the Jobs REST API of its dashboard (RAY_ADDRESS, http://HEAD:8265) with the standard
library, so the server and the CLI never import ray. A job is submitted as `python -m MODULE ARGUMENT` under the
submission id `tuneforge-<run id>` (a job id and its attempt): a submit that is retried after a lost answer finds the
id taken and does not run the job twice. The process records `ray:<submission id>` as its host
(tuneforge.processes.local.this_process), so liveness, stop and reconcile ask the cluster about that submission,
whichever process asks. Its output goes to `<work_dir>/job.log` as a local job's does (a path every node must see:
shared storage on a cluster of more than one node).

Secrets never travel in the submission (Ray shows a job's runtime env in its dashboard): a database URL with a password
and AWS credentials are left out, and the nodes must have them in their own environment.

Ray stops a job with SIGTERM and kills it `RAY_JOB_STOP_WAIT_TIME_S` later (3 s by default): each submission gets
the stop grace a local job gets, so that training checkpoints before it exits. Ray is not asked to queue:
tuneforge.jobs.queue admits jobs, and a job's process waits for its slot like a local one.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tuneforge.errors import InvalidInput, Unavailable
from tuneforge.processes.detached import STOP_GRACE_SECONDS
from tuneforge.processes.executor import ProcessHandle
from tuneforge.processes.local import LOCAL, LOG_NAME, RAY_SUBMISSION_ENV, SOURCE_ROOT

SUBMISSION_PREFIX = "tuneforge-"
HOST_PREFIX = "ray:"
ALIVE = {"PENDING", "RUNNING"}
REQUEST_SECONDS = 10.0


class RayExecutor:
    """tuneforge.processes.executor.Executor for detached processes on a Ray cluster; child processes stay local."""

    def __init__(self, address: str, *, python: str = "python", env: dict[str, str] | None = None) -> None:
        if not address.startswith(("http://", "https://")):
            raise InvalidInput(f"RAY_ADDRESS must be the Ray dashboard's Jobs API, http://HEAD:8265, got {address!r} "
                               "(tuneforge submits jobs over its REST API)", field="RAY_ADDRESS")
        self.address = address.rstrip("/")
        self.python = python
        self.env = dict(env or {})  # what every submission's processes get (e.g. PYTHONPATH to this tuneforge)

    # ---- the Jobs API ---------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            try:
                return exc.code, json.loads(text)
            except json.JSONDecodeError:
                return exc.code, text
        except (urllib.error.URLError, OSError) as exc:
            raise Unavailable(f"the Ray cluster at {self.address} does not answer ({exc}): start it (`ray start --head`) "
                              "or set RAY_ADDRESS to its dashboard, http://HEAD:8265") from None

    def status(self, submission_id: str) -> str | None:
        """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED; None when the cluster has no such job."""
        code, body = self._call("GET", f"/api/jobs/{submission_id}")
        if code == 404:
            return None
        if code != 200 or not isinstance(body, dict):
            raise Unavailable(f"the Ray Jobs API answered {code} for {submission_id}: {body}")
        return body.get("status")

    # ---- the Executor protocol ------------------------------------------------------------------------------------
    def start(self, module: str, argument: str, work_dir: Path, *, env: dict[str, str] | None = None,
              run_id: str | None = None) -> ProcessHandle:
        submission = SUBMISSION_PREFIX + (run_id or f"{argument}-{time.time_ns()}")
        log = work_dir / LOG_NAME
        # the log is the job's own, as a local job's is; Ray's copy of the driver output would be empty
        entrypoint = (f"mkdir -p {shlex.quote(str(work_dir))} && exec {shlex.quote(self.python)} -m {module} "
                      f"{shlex.quote(argument)} >> {shlex.quote(str(log))} 2>&1")
        env_vars = {**_public({**self.env, **(env or {})}), RAY_SUBMISSION_ENV: submission, "PYTHONUNBUFFERED": "1",
                    "RAY_JOB_STOP_WAIT_TIME_S": str(int(STOP_GRACE_SECONDS) + 5)}
        code, body = self._call("POST", "/api/jobs/", {
            "entrypoint": entrypoint, "submission_id": submission, "runtime_env": {"env_vars": env_vars},
            "metadata": {"tuneforge.module": module, "tuneforge.argument": argument},
        })
        if code != 200 and self.status(submission) is None:  # taken already: an earlier submit of this run got through
            raise Unavailable(f"the Ray cluster at {self.address} refused job {submission}: {body}")
        return ProcessHandle(0, time.time(), HOST_PREFIX + submission)  # the process records its own pid when it starts

    def is_alive(self, pid: int | None, started_at: float | None, host: str | None) -> bool | None:
        if not (host or "").startswith(HOST_PREFIX):
            return LOCAL.is_alive(pid, started_at, host)
        try:
            status = self.status(host.removeprefix(HOST_PREFIX))
        except Unavailable:
            return None  # the cluster cannot tell now: the row's heartbeat decides (tuneforge.processes.detached)
        return status in ALIVE

    def signal_stop(self, pid: int, started_at: float | None, host: str | None = None) -> None:
        if not (host or "").startswith(HOST_PREFIX):
            return LOCAL.signal_stop(pid, started_at, host)
        self._call("POST", f"/api/jobs/{host.removeprefix(HOST_PREFIX)}/stop")

    def terminate_tree(self, pid: int, started_at: float | None, *, grace_seconds: float, host: str | None = None) -> bool:
        if not (host or "").startswith(HOST_PREFIX):
            return LOCAL.terminate_tree(pid, started_at, grace_seconds=grace_seconds, host=host)
        submission = host.removeprefix(HOST_PREFIX)
        self._call("POST", f"/api/jobs/{submission}/stop")  # Ray sends SIGTERM, then SIGKILL after the stop grace
        deadline = time.monotonic() + grace_seconds + int(STOP_GRACE_SECONDS) + 10
        while time.monotonic() < deadline:
            if self.status(submission) not in ALIVE:
                return True
            time.sleep(0.5)
        return False

    def spawn(self, module: str, args: Sequence[str], *, stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
              stderr: int | IO[Any] | None = None, env: dict[str, str] | None = None, text: bool = True,
              bufsize: int = -1, python: str | None = None) -> subprocess.Popen:
        # a child (model worker, evaluation) runs next to the process that talks to it
        return LOCAL.spawn(module, args, stdin=stdin, stdout=stdout, stderr=stderr, env=env, text=text, bufsize=bufsize, python=python)


SECRET_NAMES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def _public(env: dict[str, str]) -> dict[str, str]:
    """`env` without what a dashboard must not show: the nodes' own environment provides those."""
    public = {k: v for k, v in env.items() if k not in SECRET_NAMES}
    url = public.get("TUNEFORGE_DATABASE_URL", "")
    if urlsplit(url).password:
        del public["TUNEFORGE_DATABASE_URL"]
    return public


def source_env() -> dict[str, str]:
    """PYTHONPATH to this tuneforge, for a cluster whose Python runs it from a checkout rather than an install."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]))}
