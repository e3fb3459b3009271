"""What happened to a customization job, oldest first: its stages, each step's losses, how it ended.

Read from the job's row and the metric CSVs its trainer writes (tuneforge.training.metrics), so a job's history
needs no table of its own; OpenAI's /v1/fine_tuning/jobs/{id}/events is one reading of it. The CSVs carry no times:
metric events take the time their training stage last changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from tuneforge.db.tables import CustomizationJobRow
from tuneforge.jobs.layout import JobOutputs
from tuneforge.jobs.states import STAGES, JobStatus, StageStatus
from tuneforge.training.metrics import REWARD_COLUMNS

_STAGE_NAMES = {"validationDetails": "Validating the data", "dataProcessingDetails": "Preparing the data",
                "trainingDetails": "Training"}


@dataclass(frozen=True)
class JobEvent:
    at: datetime
    level: Literal["info", "warn", "error"]
    message: str
    data: dict | None = None  # metrics events: the step's numbers

    @property
    def is_metrics(self) -> bool:
        return self.data is not None


def job_events(row: CustomizationJobRow) -> list[JobEvent]:
    events = [JobEvent(row.created_at, "info", f"Created fine-tuning job {row.job_name} on {row.base_model_id}")]
    training_at = row.created_at
    for stage in STAGES:
        detail = (row.status_details or {}).get(stage) or {}
        status = detail.get("status")
        if status in (None, StageStatus.NOT_STARTED.value):
            continue
        at = datetime.fromisoformat(detail["lastModifiedTime"])
        name = _STAGE_NAMES.get(stage, stage)
        if stage == "trainingDetails":
            training_at = at
            events += _metric_events(row, at)
        if status == StageStatus.IN_PROGRESS.value:
            events.append(JobEvent(at, "info", f"{name}: started"))
        elif status == StageStatus.COMPLETED.value:
            events.append(JobEvent(at, "info", f"{name}: done"))
    end = row.end_time or training_at
    if row.status == JobStatus.COMPLETED.value:
        events.append(JobEvent(end, "info", f"New fine-tuned model created: {row.custom_model_name}"))
        events.append(JobEvent(end, "info", "The job has successfully completed"))
    elif row.status == JobStatus.FAILED.value:
        events.append(JobEvent(end, "error", f"The job failed: {row.failure_message or 'see its job.log'}"))
    elif row.status in (JobStatus.STOPPED.value, JobStatus.STOPPING.value):
        events.append(JobEvent(end, "info", "The job was cancelled" if row.status == JobStatus.STOPPED.value else "Cancelling the job"))
    return events


def _metric_events(row: CustomizationJobRow, at: datetime) -> list[JobEvent]:
    training, validation = JobOutputs(Path(row.work_dir), row.output_uri, row.job_id).metrics()
    total = (row.progress or {}).get("totalSteps")
    events = []
    for r in training:
        step, loss = int(r["step_number"]), float(r["training_loss"])
        rewards, said = _rewards(r, "train_")
        events.append(JobEvent(at, "info", f"Step {step}/{total or '?'}: training loss={loss:.4f}{said}",
                               {"step": step, "train_loss": loss, "total_steps": total, "epoch": int(r["epoch_number"]), **rewards}))
    for r in validation:
        step, loss = int(r["step_number"]), float(r["validation_loss"])
        rewards, said = _rewards(r, "valid_")
        events.append(JobEvent(at, "info", f"Step {step}: validation loss={loss:.4f}{said}",
                               {"step": step, "valid_loss": loss, **rewards}))
    return events


def _rewards(row: dict[str, str], prefix: str) -> tuple[dict[str, float], str]:
    """A preference-tuning row's reward columns as event data (train_reward_accuracy, ...) and a few words."""
    if "reward_accuracy" not in row:
        return {}, ""
    data = {prefix + column: float(row[column]) for column in REWARD_COLUMNS}
    return data, f", reward accuracy={float(row['reward_accuracy']):.2f}, margin={float(row['reward_margin']):.3f}"
