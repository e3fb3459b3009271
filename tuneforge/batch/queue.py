"""The batch-job queue: TUNEFORGE_BATCH_CONCURRENCY slots claimed in the database, first come first served.

The same protocol as the customization-job queue (tuneforge.jobs.queue, whose docstring explains each step): a claim
is one INSERT the primary key lets one process win, a slot whose holder is gone is deleted naming the holder that was
seen, only the first waiting job claims. Its own table and limit, not jobs/queue.py's: those slots belong to
customization jobs (a foreign key, and "waiting" read from their stage details), and a batch job keeps one model
worker busy for its whole run, which a deployment may want to allow beside training or not.

Waiting here means Scheduled (validated, not started) and presumed alive; a job restarted after its process died
is InProgress, so it takes the next free slot ahead of the queue and resumes.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.batch.states import OPEN, BatchStatus
from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import BatchJobRow, BatchSlotRow
from tuneforge.processes.detached import presumed_alive
from tuneforge.processes.executor import Executor, ProcessHandle

__all__ = ["claim_slot", "release_slot"]


def claim_slot(sessions: sessionmaker[Session], job_id: str, holder: ProcessHandle, *, concurrency: int,
               executor: Executor) -> int | None:
    """One try: the slot `job_id` now holds for `holder`, or None when it is not its turn or no slot is free."""
    with sessions() as session:
        held = session.scalars(select(BatchSlotRow)).all()
        open_jobs = session.scalars(select(BatchJobRow).where(BatchJobRow.status.in_(OPEN))
                                    .order_by(BatchJobRow.created_at, BatchJobRow.job_id)).all()
    by_id = {job.job_id: job for job in open_jobs}
    mine = by_id.get(job_id)
    if mine is None or (mine.pid, mine.host) != (holder.pid, holder.host):
        return None
    live = []
    for slot in held:
        job = by_id.get(slot.job_id)
        if job is not None and (job.pid, job.host) == (slot.pid, slot.host) and presumed_alive(job, executor):
            live.append(slot)
        else:
            with session_scope(sessions) as session:  # only the claim that was seen: a newer one stays
                session.execute(delete(BatchSlotRow).where(
                    BatchSlotRow.slot == slot.slot, BatchSlotRow.job_id == slot.job_id, BatchSlotRow.pid == slot.pid,
                    BatchSlotRow.pid_started_at == slot.pid_started_at, BatchSlotRow.host == slot.host))
    for slot in live:
        if slot.job_id == job_id:
            return slot.slot
    holding = {slot.job_id for slot in live}
    waiting = [job.job_id for job in open_jobs if job.status == BatchStatus.SCHEDULED.value and job.job_id not in holding
               and presumed_alive(job, executor)]
    if job_id in waiting and waiting[0] != job_id:
        return None
    taken = {slot.slot for slot in live}
    for number in range(concurrency):
        if number in taken:
            continue
        try:
            with session_scope(sessions) as session:
                session.add(BatchSlotRow(slot=number, job_id=job_id, pid=holder.pid, pid_started_at=holder.started_at,
                                         host=holder.host, claimed_at=utcnow()))
            return number
        except IntegrityError:  # another claimant won this slot since we read
            continue
    return None


def release_slot(session: Session, job_id: str, holder: ProcessHandle | None = None) -> None:
    """Free the slot `job_id` holds, in the caller's transaction; only `holder`'s claim when given."""
    statement = delete(BatchSlotRow).where(BatchSlotRow.job_id == job_id)
    if holder is not None:
        statement = statement.where(BatchSlotRow.pid == holder.pid, BatchSlotRow.host == holder.host)
    session.execute(statement)
