"""The customization-job queue: TUNEFORGE_JOB_CONCURRENCY slots claimed in the database, first come first served.

A job's process (tuneforge.jobs.process) calls `claim_slot` until it holds a slot, trains, and `release_slot`s it
in a finally; reconcile (tuneforge.jobs.service) releases the slot of a dead job when it closes or restarts it.
Every host that shares the database shares the slots, so the limit holds across hosts (give every host the same
TUNEFORGE_JOB_CONCURRENCY: a claimant tries slots 0 .. its own value - 1).

Each step is one statement, atomic on SQLite and PostgreSQL alike:
- a claim INSERTs the slot's row (tuneforge.db.tables.JobSlotRow): the primary key lets one claimant win a slot,
  the unique job_id lets a job hold one slot at most;
- a slot whose holder is gone (its job ended or was restarted as another process, or its process is presumed
  dead, judged as reconcile judges it: tuneforge.processes.detached.presumed_alive) is DELETEd naming the holder
  that was seen, so a slot claimed again meanwhile is never freed. Any waiting job frees it, so a crashed job
  never blocks the queue.

FIFO: only the first waiting job, by (created_at, job_id), may claim. A job waits when it is InProgress, presumed
alive, holds no slot and has not started validating; a job restarted after its process died has started, so it
takes the next free slot ahead of the queue and resumes where it was.

Limits: a process on another host counts as alive while its job's heartbeat is fresh (OTHER_HOST_TRUST), so the
slot of a job whose host died is freed only after that long; and the order is created_at as the clock of the
host that created each job wrote it, so hosts' clocks should agree (NTP).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import CustomizationJobRow, JobSlotRow
from tuneforge.jobs.states import RUNNING, JobStatus, StageStatus
from tuneforge.processes.detached import presumed_alive
from tuneforge.processes.executor import Executor, ProcessHandle

__all__ = ["claim_slot", "release_slot"]


def claim_slot(sessions: sessionmaker[Session], job_id: str, holder: ProcessHandle, *, concurrency: int,
               executor: Executor) -> int | None:
    """One try: the slot `job_id` now holds for `holder` (its process), or None when it is not the job's turn or
    no slot is free. Frees the slots of holders that are gone on the way. Call it again until it answers a slot."""
    with sessions() as session:
        held = session.scalars(select(JobSlotRow)).all()
        open_jobs = session.scalars(
            select(CustomizationJobRow)
            .where(CustomizationJobRow.status.in_(RUNNING))
            .order_by(CustomizationJobRow.created_at, CustomizationJobRow.job_id)
        ).all()
    by_id = {job.job_id: job for job in open_jobs}
    mine = by_id.get(job_id)
    if mine is None or (mine.pid, mine.host) != (holder.pid, holder.host):  # ended, or no longer this process's job
        return None
    live = []
    for slot in held:
        if _holds(slot, by_id.get(slot.job_id), executor):
            live.append(slot)
        else:
            _free(sessions, slot)
    for slot in live:
        if slot.job_id == job_id:  # asked again: a live claim of this job is this process's (_holds checked its pid)
            return slot.slot
    if not _first_waiting(job_id, open_jobs, {slot.job_id for slot in live}, executor):
        return None
    taken = {slot.slot for slot in live}
    for number in range(concurrency):
        if number in taken:
            continue
        try:
            with session_scope(sessions) as session:
                session.add(JobSlotRow(slot=number, job_id=job_id, pid=holder.pid, pid_started_at=holder.started_at,
                                       host=holder.host, claimed_at=utcnow()))
            return number
        except IntegrityError:  # another claimant won this slot since we read
            continue
    return None


def release_slot(session: Session, job_id: str, holder: ProcessHandle | None = None) -> None:
    """Free the slot `job_id` holds, in the caller's transaction; only `holder`'s claim when given (a job's process
    frees its own claim, never one a later process of the same job made)."""
    statement = delete(JobSlotRow).where(JobSlotRow.job_id == job_id)
    if holder is not None:
        statement = statement.where(JobSlotRow.pid == holder.pid, JobSlotRow.host == holder.host)
    session.execute(statement)


def _holds(slot: JobSlotRow, job: CustomizationJobRow | None, executor: Executor) -> bool:
    """Whether the slot's holder still runs its job: the job is open, its row still names this process, and the
    process is presumed alive."""
    if job is None or (job.pid, job.host) != (slot.pid, slot.host):  # ended, or restarted as another process
        return False
    return presumed_alive(job, executor)


def _free(sessions: sessionmaker[Session], slot: JobSlotRow) -> None:
    """Delete the claim that was seen, and only that one: a slot someone claimed since stays theirs."""
    with session_scope(sessions) as session:
        session.execute(delete(JobSlotRow).where(
            JobSlotRow.slot == slot.slot, JobSlotRow.job_id == slot.job_id, JobSlotRow.pid == slot.pid,
            JobSlotRow.pid_started_at == slot.pid_started_at, JobSlotRow.host == slot.host,
        ))


def _first_waiting(job_id: str, open_jobs: Iterable[CustomizationJobRow], holding: set[str], executor: Executor) -> bool:
    """Whether `job_id` may claim: it is the first waiting job, or not waiting at all (restarted: it resumes)."""
    waiting = [
        job.job_id for job in open_jobs  # in creation order
        if job.status == JobStatus.IN_PROGRESS.value and job.job_id not in holding
        and job.status_details["validationDetails"]["status"] == StageStatus.NOT_STARTED.value
        and presumed_alive(job, executor)
    ]
    return job_id not in waiting or waiting[0] == job_id
