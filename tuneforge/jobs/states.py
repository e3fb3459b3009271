"""Job statuses, mirroring botocore's enums, and the one function that moves between them.

    InProgress ──> Completed
        │  └─────> Failed
        └─> Stopping ──> Stopped

statusDetails has three stages (validation, dataProcessing, training), each NotStarted -> InProgress ->
Completed | Failed | Stopped. A job waiting for a free slot is InProgress with every stage NotStarted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from tuneforge.errors import Conflict


class JobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class StageStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


STAGES = ("validationDetails", "dataProcessingDetails", "trainingDetails")
TERMINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED}

_ALLOWED = {
    JobStatus.IN_PROGRESS: {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPING, JobStatus.STOPPED},
    JobStatus.STOPPING: {JobStatus.STOPPED, JobStatus.FAILED, JobStatus.COMPLETED},
}


def check_transition(current: str, target: JobStatus, *, job_name: str) -> None:
    """Raise Conflict unless `current` may move to `target`."""
    if target not in _ALLOWED.get(JobStatus(current), set()):
        raise Conflict(f"job {job_name!r} is {current}; it cannot become {target.value}", field="jobIdentifier")


def initial_details(now: datetime) -> dict:
    return {stage: {"status": StageStatus.NOT_STARTED.value, "creationTime": now.isoformat(), "lastModifiedTime": now.isoformat()} for stage in STAGES}


def set_stage(details: dict, stage: str, status: StageStatus, now: datetime) -> dict:
    """A new statusDetails dict with one stage changed (JSON columns are replaced, not mutated in place)."""
    updated = {key: dict(value) for key, value in details.items()}
    updated[stage]["status"] = status.value
    updated[stage]["lastModifiedTime"] = now.isoformat()
    return updated


def close_open_stages(details: dict, status: StageStatus, now: datetime) -> dict:
    """When a job ends early, the stage that was running (and those after it) take the job's outcome."""
    updated = details
    for stage in STAGES:
        if updated[stage]["status"] in (StageStatus.IN_PROGRESS.value, StageStatus.STOPPING.value):
            updated = set_stage(updated, stage, status, now)
    return updated
