"""The customization-job queue (tuneforge.jobs.queue) on SQLite and on a real PostgreSQL, with real job rows.

Two "hosts" share one database, each with its own TUNEFORGE_HOME: this machine, whose job processes are real
(sleeping) processes the local executor can see, and `host-b`, whose processes only their heartbeat vouches
for, as a process on another host is judged. Most tests drive the slot functions themselves with real rows;
one (slow) runs two real job processes from two homes on one PostgreSQL database.

    pytest tests/test_job_queue.py
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import CustomizationJobRow, JobSlotRow
from tuneforge.jobs.queue import claim_slot, release_slot
from tuneforge.jobs.service import MAX_ATTEMPTS, JobService
from tuneforge.jobs.states import JobStatus, StageStatus, initial_details, set_stage
from tuneforge.processes.detached import OTHER_HOST_TRUST
from tuneforge.processes.executor import ProcessHandle
from tuneforge.processes.local import LOCAL
from tuneforge.settings import Settings, load_settings

HERE = socket.gethostname()
OTHER = "host-b"  # not this machine: the executor cannot see its processes, their heartbeat decides
SLEEP = "import time; time.sleep(120)"  # a stand-in job process: alive until the test kills it


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def start_process(processes: list[subprocess.Popen]) -> ProcessHandle:
    proc = subprocess.Popen([sys.executable, "-c", SLEEP])
    processes.append(proc)
    return ProcessHandle(proc.pid, psutil.Process(proc.pid).create_time(), HERE)


def kill(processes: list[subprocess.Popen], handle: ProcessHandle) -> None:
    proc = next(p for p in processes if p.pid == handle.pid)
    proc.kill()
    proc.wait()  # reaped: no zombie left for the executor to see


def other_host_process(n: int) -> ProcessHandle:
    return ProcessHandle(40_000 + n, 1_700_000_000.0 + n, OTHER)


def host_settings(root: Path, name: str, database_url: str, concurrency: int) -> Settings:
    return load_settings(home=root / name, database_url=database_url, job_concurrency=concurrency)


def add_job(db: sessionmaker[Session], job_id: str, holder: ProcessHandle, *, age_seconds: float) -> None:
    """A job as JobService.create stores it and its process records itself: InProgress, every stage NotStarted."""
    created = utcnow() - timedelta(seconds=age_seconds)
    with session_scope(db) as session:
        session.add(CustomizationJobRow(
            job_id=job_id, job_arn=f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tiny/{job_id}",
            job_name=job_id, custom_model_name=f"{job_id}-model", role_arn="arn:aws:iam::000000000000:role/r",
            base_model_id="tiny", base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tiny",
            customization_type="FINE_TUNING", hyperparameters={}, training_data_uri="/data/train.jsonl",
            validation_data_uris=[], output_uri="/out", job_tags=[], custom_model_tags=[],
            status=JobStatus.IN_PROGRESS.value, status_details=initial_details(created), progress={},
            work_dir=f"/work/{job_id}", attempts=1, pid=holder.pid, pid_started_at=holder.started_at, host=holder.host,
            heartbeat_at=utcnow(), created_at=created, updated_at=created,
        ))


def set_job(db: sessionmaker[Session], job_id: str, **values) -> None:
    with session_scope(db) as session:
        session.execute(update(CustomizationJobRow).where(CustomizationJobRow.job_id == job_id).values(**values))


def start_validating(db: sessionmaker[Session], job_id: str) -> None:
    with db() as session:
        details = session.get(CustomizationJobRow, job_id).status_details
    set_job(db, job_id, status_details=set_stage(details, "validationDetails", StageStatus.IN_PROGRESS, utcnow()))


def held(db: sessionmaker[Session]) -> dict[int, str]:
    with db() as session:
        return {row.slot: row.job_id for row in session.scalars(select(JobSlotRow))}


def claim(db: sessionmaker[Session], job_id: str, holder: ProcessHandle, concurrency: int = 1) -> int | None:
    return claim_slot(db, job_id, holder, concurrency=concurrency, executor=LOCAL)


# ---- FIFO across hosts ------------------------------------------------------------------------------------------


def test_two_hosts_with_concurrency_1_run_one_job_at_a_time_in_creation_order(database_url, tmp_path, processes):
    hosts = [host_settings(tmp_path, "host-a", database_url, 1), host_settings(tmp_path, "host-b", database_url, 1)]
    assert hosts[0].home != hosts[1].home  # nothing on either host's disk is shared: only the database
    db = open_database(database_url)
    jobs = []
    for n in range(6):  # alternating hosts, created one second apart
        holder = start_process(processes) if n % 2 == 0 else other_host_process(n)
        add_job(db, f"job{n}", holder, age_seconds=60 - n)
        jobs.append((f"job{n}", holder, hosts[n % 2]))
    order, running, most, lock = [], [0], [0], threading.Lock()
    failures: list[BaseException] = []

    def job_process(job_id: str, holder: ProcessHandle, settings: Settings) -> None:
        try:
            deadline = time.monotonic() + 60
            while claim_slot(db, job_id, holder, concurrency=settings.job_concurrency, executor=LOCAL) is None:
                assert time.monotonic() < deadline, f"{job_id} never got a slot: {held(db)}"
                set_job(db, job_id, heartbeat_at=utcnow())  # what a queued job process does while it polls
                time.sleep(0.05)
            with lock:
                order.append(job_id)
                running[0] += 1
                most[0] = max(most[0], running[0])
            start_validating(db, job_id)
            time.sleep(0.1)  # trains
            with lock:
                running[0] -= 1
            with session_scope(db) as session:  # completes, then frees the slot (the process's finally)
                session.execute(update(CustomizationJobRow).where(CustomizationJobRow.job_id == job_id)
                                .values(status=JobStatus.COMPLETED.value))
                release_slot(session, job_id, holder)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=job_process, args=job) for job in reversed(jobs)]  # the newest asks first
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert failures == []
    assert order == [job_id for job_id, _, _ in jobs]
    assert most[0] == 1
    assert held(db) == {}


def test_only_the_first_waiting_job_may_claim_even_with_a_slot_free(database_url, processes):
    db = open_database(database_url)
    first, second = start_process(processes), other_host_process(1)
    add_job(db, "first", first, age_seconds=10)
    add_job(db, "second", second, age_seconds=5)
    assert claim(db, "second", second, concurrency=2) is None
    assert claim(db, "first", first, concurrency=2) == 0
    assert claim(db, "first", first, concurrency=2) == 0  # asking again: the slot it holds
    assert claim(db, "second", second, concurrency=2) == 1
    assert held(db) == {0: "first", 1: "second"}


def test_concurrency_2_runs_two_jobs_at_once_and_the_third_waits(database_url, tmp_path, processes):
    db = open_database(database_url)
    two = host_settings(tmp_path, "host-a", database_url, 2).job_concurrency
    handles = {name: start_process(processes) for name in ("a", "b", "c")}
    for age, name in enumerate("cba"):
        add_job(db, name, handles[name], age_seconds=age)
    assert [claim(db, name, handles[name], two) for name in "abc"] == [0, 1, None]
    with session_scope(db) as session:
        release_slot(session, "a", handles["b"])  # another process's claim: left alone
    assert held(db) == {0: "a", 1: "b"}
    set_job(db, "a", status=JobStatus.COMPLETED.value)
    with session_scope(db) as session:
        release_slot(session, "a", handles["a"])
    assert claim(db, "c", handles["c"], two) == 0
    assert held(db) == {0: "c", 1: "b"}


# ---- a crashed job never blocks the queue -----------------------------------------------------------------------


def test_a_dead_holders_slot_is_reclaimed_by_the_next_job(database_url, processes):
    db = open_database(database_url)
    crashed, waiting = start_process(processes), start_process(processes)
    add_job(db, "crashed", crashed, age_seconds=10)
    add_job(db, "waiting", waiting, age_seconds=5)
    assert claim(db, "crashed", crashed) == 0
    start_validating(db, "crashed")
    assert claim(db, "waiting", waiting) is None
    kill(processes, crashed)  # killed mid-training: its finally never ran, its row is still InProgress
    assert claim(db, "waiting", waiting) == 0
    assert held(db) == {0: "waiting"}


def test_a_holder_on_another_host_keeps_its_slot_while_its_heartbeat_is_fresh(database_url, processes):
    db = open_database(database_url)
    remote, waiting = other_host_process(1), start_process(processes)
    add_job(db, "remote", remote, age_seconds=10)
    add_job(db, "waiting", waiting, age_seconds=5)
    assert claim(db, "remote", remote) == 0
    start_validating(db, "remote")
    assert claim(db, "waiting", waiting) is None
    set_job(db, "remote", heartbeat_at=utcnow() - OTHER_HOST_TRUST - timedelta(seconds=1))  # its host went away
    assert claim(db, "waiting", waiting) == 0


def test_a_dead_job_waiting_first_does_not_hold_up_the_ones_behind_it(database_url, processes):
    db = open_database(database_url)
    gone, waiting = start_process(processes), start_process(processes)
    add_job(db, "gone", gone, age_seconds=10)
    add_job(db, "waiting", waiting, age_seconds=5)
    kill(processes, gone)
    assert claim(db, "waiting", waiting) == 0


def test_a_slot_held_for_an_earlier_process_of_the_job_is_freed(database_url, processes):
    """The job was restarted (a new process in its row) without its old claim being released."""
    db = open_database(database_url)
    old, new = start_process(processes), start_process(processes)
    add_job(db, "job", old, age_seconds=10)
    assert claim(db, "job", old) == 0
    start_validating(db, "job")
    set_job(db, "job", pid=new.pid, pid_started_at=new.started_at)
    assert claim(db, "job", old) is None  # the old process is no longer the job's
    assert claim(db, "job", new) == 0
    with db() as session:
        assert session.get(JobSlotRow, 0).pid == new.pid


# ---- reconcile frees the slot of a job it closes or restarts ----------------------------------------------------


class SleepingExecutor:
    """The local executor, except that a started job sleeps instead of training: a restart without a training run."""

    def __init__(self, processes: list[subprocess.Popen]) -> None:
        self.processes = processes
        self.started: list[str] = []

    def start(self, module: str, argument: str, work_dir: Path, *, env: dict[str, str] | None = None,
              run_id: str | None = None) -> ProcessHandle:
        self.started.append(argument)
        return start_process(self.processes)

    def is_alive(self, pid: int | None, started_at: float | None, host: str | None) -> bool | None:
        return LOCAL.is_alive(pid, started_at, host)

    def signal_stop(self, pid: int, started_at: float | None, host: str | None = None) -> None:
        LOCAL.signal_stop(pid, started_at, host)

    def terminate_tree(self, pid: int, started_at: float | None, *, grace_seconds: float, host: str | None = None) -> bool:
        return LOCAL.terminate_tree(pid, started_at, grace_seconds=grace_seconds, host=host)

    def spawn(self, *args, **kwargs) -> subprocess.Popen:
        return LOCAL.spawn(*args, **kwargs)


def test_reconcile_frees_the_slot_of_a_dead_job_it_restarts_or_closes(database_url, tmp_path, processes):
    settings = host_settings(tmp_path, "host-a", database_url, 2)
    db = open_database(database_url)
    executor = SleepingExecutor(processes)
    jobs = JobService(settings, db, Catalog(settings, db), reconcile=False, executor=executor)
    restarted, failed = start_process(processes), start_process(processes)
    add_job(db, "restarted", restarted, age_seconds=10)
    add_job(db, "failed", failed, age_seconds=5)
    set_job(db, "failed", attempts=MAX_ATTEMPTS)
    assert claim(db, "restarted", restarted, 2) == 0
    assert claim(db, "failed", failed, 2) == 1
    kill(processes, restarted)
    kill(processes, failed)
    assert sorted(jobs.reconcile()) == ["failed", "restarted"]
    assert held(db) == {}
    assert executor.started == ["restarted"]
    assert (jobs.get("restarted").status, jobs.get("restarted").attempts) == ("InProgress", 2)
    assert jobs.get("failed").status == "Failed"


# ---- real job processes on two homes ----------------------------------------------------------------------------


@pytest.mark.slow  # two real job processes, each loading torch and training the tiny model
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_job_processes_of_two_homes_sharing_postgresql_train_one_at_a_time(database_url, tmp_path, tiny_model_dir):
    """With lock files under each TUNEFORGE_HOME, these two would have trained at once."""
    from tests.api_server import stop_unfinished
    from tests.test_jobs import TIMEOUT, request, summaries, wait, write_jsonl

    db = open_database(database_url)
    services = []
    for name in ("host-a", "host-b"):
        settings = host_settings(tmp_path, name, database_url, 1)
        services.append(JobService(settings, db, Catalog(settings, db)))
    services[0].catalog.add("tiny", str(tiny_model_dir))  # a row in the shared database: both homes see it
    first, second = services
    try:
        first.create(request(tmp_path, "first", training_data_uri=write_jsonl(tmp_path / "q1.jsonl", summaries(60)),
                             hyperparameters={"epochCount": "2", "batchSize": "1", "maxSequenceLength": "128"}))
        second.create(request(tmp_path, "second"))
        assert Path(second.get("second").work_dir).is_relative_to(tmp_path / "host-b")
        deadline = time.monotonic() + TIMEOUT
        seen_waiting = False
        while first.get("first").status == "InProgress":
            assert time.monotonic() < deadline
            if first.get("first").status_details["trainingDetails"]["status"] == "InProgress":
                assert second.get("second").status_details["validationDetails"]["status"] == "NotStarted"
                seen_waiting = True
            time.sleep(0.3)
        assert seen_waiting
        assert first.get("first").status == "Completed"
        assert wait(second, "second").status == "Completed"
        assert held(db) == {}
    finally:
        stop_unfinished(first)
