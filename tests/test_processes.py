"""The process framework's shared parts on their own: the error codec over a pipe, the liveness rule services
reconcile with, the heartbeat throttle, and the local executor on a real process. (Every kind of process runs
through them end to end in test_jobs, test_kb_service, test_inference and test_evaluation.)"""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from tuneforge.db import utcnow
from tuneforge.errors import InvalidInput, ModelFailure, Throttled
from tuneforge.processes.detached import STARTING_GRACE_SECONDS, Heartbeat, presumed_alive, this_process
from tuneforge.processes.local import LOCAL
from tuneforge.processes.pipe import LineWriter, error_event, raise_error


def test_an_error_crosses_the_pipe_as_its_own_type_and_field():
    sent = error_event(InvalidInput("maxTokens must be positive", field="maxTokens"))
    with pytest.raises(InvalidInput, match="maxTokens must be positive") as caught:
        raise_error(json.loads(json.dumps(sent)), default_message="unused")
    assert caught.value.field == "maxTokens"
    with pytest.raises(Throttled):
        raise_error(error_event(Throttled("queue full")), default_message="unused")


def test_an_unexpected_exception_becomes_model_failure_with_its_type_and_a_logged_trace():
    log = io.StringIO()
    try:
        raise KeyError("k")
    except KeyError as exc:
        sent = error_event(exc, log=log)
    assert sent == {"event": "error", "type": "ModelFailure", "message": "KeyError: 'k'", "field": None}
    assert "Traceback" in log.getvalue()
    with pytest.raises(ModelFailure, match="the worker failed"):
        raise_error({"event": "error", "type": "NoSuchError"}, default_message="the worker failed")


def test_line_writer_writes_whole_json_lines():
    out = io.StringIO()
    LineWriter(out).send({"id": 1, "event": "done"})
    LineWriter(out).send({"id": 2, "event": "delta", "text": "a\nb"})
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"id": 1, "event": "done"}, {"id": 2, "event": "delta", "text": "a\nb"}]


@dataclass
class Row:
    pid: int | None
    pid_started_at: float | None
    host: str | None
    heartbeat_at: datetime | None


def test_liveness_of_a_row():
    now = utcnow()
    me = this_process()
    assert presumed_alive(Row(me.pid, me.started_at, me.host, now), LOCAL, now=now)  # this very process
    assert not presumed_alive(Row(me.pid, me.started_at - 100, me.host, now), LOCAL, now=now)  # its pid, reused
    just_made = now - timedelta(seconds=STARTING_GRACE_SECONDS / 2)
    assert presumed_alive(Row(None, None, None, just_made), LOCAL, now=now)  # being started
    assert not presumed_alive(Row(None, None, None, now - timedelta(seconds=STARTING_GRACE_SECONDS * 2)), LOCAL, now=now)
    assert presumed_alive(Row(1, 1.0, "another-host", now - timedelta(minutes=1)), LOCAL, now=now)  # its heartbeat decides
    assert not presumed_alive(Row(1, 1.0, "another-host", now - timedelta(hours=1)), LOCAL, now=now)


def test_heartbeat_is_due_every_interval_or_when_forced():
    clock = iter([100.0, 100.5, 101.1, 101.2, 101.3]).__next__
    beat = Heartbeat(1.0, clock=clock)
    assert [beat.due(), beat.due(), beat.due(), beat.due(), beat.due(force=True)] == [True, False, True, False, True]


def test_local_executor_spawns_a_child_with_pipes():
    proc = LOCAL.spawn("json.tool", [], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate('{"a": 1}', timeout=60)
    assert json.loads(out) == {"a": 1} and proc.returncode == 0


def test_a_live_process_survives_a_moved_wall_clock_but_a_reused_pid_does_not():
    """create_time moves with the kernel's boot time when the wall clock is adjusted; a reconcile must not take a
    live job for dead (it once started a second process for a job an hour in)."""
    import socket
    import sys

    import psutil

    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "tuneforge.jobs.process", "job-x"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()
        started = psutil.Process(ours.pid).create_time()
        assert LOCAL.is_alive(ours.pid, started, host) is True
        assert LOCAL.is_alive(ours.pid, started + 7.5, host) is True  # the clock moved by seconds: still ours
        assert LOCAL.is_alive(ours.pid, started - 3600, host) is False  # an hour apart: another process
        other_started = psutil.Process(other.pid).create_time()
        assert LOCAL.is_alive(other.pid, other_started, host) is True
        assert LOCAL.is_alive(other.pid, other_started + 7.5, host) is False  # not tuneforge's: a reused pid
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()
