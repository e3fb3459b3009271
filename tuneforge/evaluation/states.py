"""Evaluation job statuses, botocore's EvaluationJobStatus, and their lifecycle (`EVALUATION_JOB`).

    InProgress ─> Completed | Failed
        └──> Stopping ─> Stopped        (any end) ─> Deleting (BatchDeleteEvaluationJob, then the row is gone)
"""

from __future__ import annotations

from enum import StrEnum

from tuneforge.lifecycle import Lifecycle


class EvaluationStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    DELETING = "Deleting"


_ENDED = (EvaluationStatus.COMPLETED, EvaluationStatus.FAILED, EvaluationStatus.STOPPED)
EVALUATION_JOB = Lifecycle("evaluation job", {
    EvaluationStatus.IN_PROGRESS: {EvaluationStatus.COMPLETED, EvaluationStatus.FAILED, EvaluationStatus.STOPPING},
    EvaluationStatus.STOPPING: {EvaluationStatus.STOPPED, EvaluationStatus.FAILED, EvaluationStatus.COMPLETED},
    **{ended: {EvaluationStatus.DELETING} for ended in _ENDED},
}, field="jobIdentifier")

RUNNING = (EvaluationStatus.IN_PROGRESS.value, EvaluationStatus.STOPPING.value)
