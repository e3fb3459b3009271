"""A job's outputs in Bedrock's layout, copied from the job's work directory to its output location.

    <outputDataConfig.s3Uri>/model-customization-job-<jobId>/
        training_artifacts/step_wise_training_metrics.csv      (written by the trainer as it goes)
        validation_artifacts/post_fine_tuning_validation/validation_metrics.csv
        job.log
Weights are not written there (as in Bedrock): they go to the custom-model registry.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tuneforge import storage
from tuneforge.training.metrics import TRAINING_CSV, VALIDATION_CSV


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class JobOutputs:
    def __init__(self, work_dir: Path, output_uri: str, job_id: str) -> None:
        self.local = work_dir / "train"  # the trainer's output directory
        folder = f"model-customization-job-{job_id}/"
        self.remote = storage.join(output_uri if output_uri.endswith("/") else output_uri + "/", folder)

    def metrics(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        return read_csv(self.local / TRAINING_CSV), read_csv(self.local / VALIDATION_CSV)

    def upload(self, *, log_path: Path | None = None) -> None:
        for relative in (TRAINING_CSV, VALIDATION_CSV):
            if (self.local / relative).exists():
                storage.upload_file(self.local / relative, storage.join(self.remote, str(relative)))
        if log_path is not None and log_path.exists():
            storage.upload_file(log_path, storage.join(self.remote, "job.log"))
