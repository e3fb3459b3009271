"""Batch inference job statuses, botocore's ModelInvocationJobStatus, and their lifecycle (`BATCH_JOB`).

    Submitted ─> Validating ─> Scheduled ─> InProgress ─> Completed | PartiallyCompleted | Failed
         └───────────┴────────────┴─────────────┴──> Stopping ─> Stopped
                                  └─> Expired (still waiting for a slot when timeoutDurationInHours ran out)

Every status before an end may also become Failed. PartiallyCompleted: some records ended with an `error`
line, or the timeout ended the job before every record was processed (Bedrock's meaning).
"""

from __future__ import annotations

from enum import StrEnum

from tuneforge.lifecycle import Lifecycle


class BatchStatus(StrEnum):
    SUBMITTED = "Submitted"
    VALIDATING = "Validating"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    PARTIALLY_COMPLETED = "PartiallyCompleted"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    EXPIRED = "Expired"


_ENDS = {BatchStatus.COMPLETED, BatchStatus.PARTIALLY_COMPLETED}
BATCH_JOB = Lifecycle("model invocation job", {
    BatchStatus.SUBMITTED: {BatchStatus.VALIDATING, BatchStatus.STOPPING, BatchStatus.FAILED},
    BatchStatus.VALIDATING: {BatchStatus.SCHEDULED, BatchStatus.STOPPING, BatchStatus.FAILED},
    BatchStatus.SCHEDULED: {BatchStatus.IN_PROGRESS, BatchStatus.STOPPING, BatchStatus.FAILED, BatchStatus.EXPIRED},
    BatchStatus.IN_PROGRESS: {*_ENDS, BatchStatus.STOPPING, BatchStatus.FAILED},
    # a job asked to stop may finish its last records first, or fail doing so
    BatchStatus.STOPPING: {BatchStatus.STOPPED, BatchStatus.FAILED, *_ENDS},
}, field="jobIdentifier")

OPEN = tuple(sorted(BATCH_JOB.allowed))  # the statuses a job's process is (or should be) running in
TERMINAL = frozenset(s for s in BatchStatus if s.value not in BATCH_JOB.allowed)
