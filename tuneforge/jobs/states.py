"""Job statuses, mirroring botocore's enums, and their lifecycle (`JOB`): every status write goes through it.

    InProgress ──> Completed
        │  └─────> Failed
        └─> Stopping ──> Stopped

statusDetails has three stages (validation, dataProcessing, training), each NotStarted -> InProgress ->
Completed | Failed | Stopped. A job waiting for a free slot is InProgress with every stage NotStarted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from tuneforge.lifecycle import Lifecycle


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

JOB = Lifecycle("job", {
    JobStatus.IN_PROGRESS: {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPING, JobStatus.STOPPED},
    # a job asked to stop may still finish its last step and register, or fail doing so
    JobStatus.STOPPING: {JobStatus.STOPPED, JobStatus.FAILED, JobStatus.COMPLETED},
}, field="jobIdentifier")
RUNNING = (JobStatus.IN_PROGRESS.value, JobStatus.STOPPING.value)


def check_transition(current: str, target: JobStatus, *, job_name: str) -> None:
    """Raise Conflict unless `current` may move to `target`."""
    JOB.check(current, target, name=job_name)


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
