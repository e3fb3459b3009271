"""The process that runs one customization job: `python -m tuneforge.jobs.process JOB_ID`.

Started detached by JobService (tuneforge.processes). Reads top to bottom:
  wait for a free slot -> validate the data -> tokenize -> train (checkpoints, metrics) -> write Bedrock's
  output layout -> register the custom model -> Completed.
SIGTERM (StopModelCustomizationJob) makes training checkpoint and return; the job then ends Stopped.
Any error ends it Failed with a message that says what to do. A restarted job (after its process died)
resumes from its last checkpoint.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

from sqlalchemy import select, update

from tuneforge.catalog.entries import Customization
from tuneforge.catalog.service import Catalog
from tuneforge.data import DatasetKind, check_combined, load_token_counter, read_records, validate_dataset
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import CustomizationJobRow
from tuneforge.errors import Conflict, InvalidInput
from tuneforge.inference.checkpoint import check_checkpoint_dir, context_length
from tuneforge.jobs.layout import JobOutputs
from tuneforge.jobs.queue import claim_slot, release_slot
from tuneforge.jobs.service import model_family
from tuneforge.jobs.states import JOB, RUNNING, JobStatus, StageStatus, close_open_stages, set_stage
from tuneforge.models.specs import foundation_spec
from tuneforge.processes.detached import Heartbeat, run_detached, this_process
from tuneforge.processes.executor import ProcessHandle
from tuneforge.processes.local import LOCAL, LOG_NAME
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.settings import Settings, load_settings
from tuneforge.training.auto import DataFacts, choose
from tuneforge.training.hparams import parse_hyperparameters
from tuneforge.training.lengths import FALLBACK_CONTEXT, record_limit, training_length
from tuneforge.training.trainer import TrainConfig, train

HEARTBEAT_SECONDS = 2.0  # how often progress and the heartbeat reach the database
SLOT_POLL_SECONDS = 1.0


class StopRequested(Exception):
    pass


class JobProcess:
    def __init__(self, settings: Settings, job_id: str) -> None:
        self.settings = settings
        self.sessions = open_database(settings.database_url)
        self.catalog = Catalog(settings, self.sessions)
        self.job_id = job_id
        self.stop_requested = False
        self._heartbeat = Heartbeat(HEARTBEAT_SECONDS)
        with self.sessions() as session:
            self.job = session.get(CustomizationJobRow, job_id)
        if self.job is None:
            raise SystemExit(f"no customization job {job_id}")
        self.work_dir = Path(self.job.work_dir)
        self.outputs = JobOutputs(self.work_dir, self.job.output_uri, job_id)

    # ---- database -------------------------------------------------------------------------------
    def save(self, **values) -> None:
        with session_scope(self.sessions) as session:
            session.execute(update(CustomizationJobRow).where(CustomizationJobRow.job_id == self.job_id).values(updated_at=utcnow(), **values))
        with self.sessions() as session:
            self.job = session.get(CustomizationJobRow, self.job_id)

    def move(self, target: JobStatus, **values) -> None:
        """The job's status becomes `target` (tuneforge.jobs.states.JOB), or Conflict if it ended meanwhile."""
        with session_scope(self.sessions) as session:
            JOB.move(session, CustomizationJobRow.status, CustomizationJobRow.job_id == self.job_id, target,
                     name=self.job.job_name, updated_at=utcnow(), **values)
        with self.sessions() as session:
            self.job = session.get(CustomizationJobRow, self.job_id)

    def stage(self, name: str, status: StageStatus) -> None:
        self.save(status_details=set_stage(self.job.status_details, name, status, utcnow()))

    def status(self) -> str:
        with self.sessions() as session:
            return session.scalar(select(CustomizationJobRow.status).where(CustomizationJobRow.job_id == self.job_id))

    def heartbeat(self, progress: dict | None = None, *, force: bool = False) -> None:
        if self._heartbeat.due(force=force):
            self.save(heartbeat_at=utcnow(), **({"progress": progress} if progress is not None else {}))

    def should_stop(self) -> bool:
        return self.stop_requested

    # ---- the job --------------------------------------------------------------------------------
    def run(self) -> None:
        if self.job.status == JobStatus.STOPPING.value:  # stopped before this process started: nobody else would end it
            self.finish(JobStatus.STOPPED, StageStatus.STOPPED)
            return
        if self.job.status != JobStatus.IN_PROGRESS.value:  # ended before this process started
            print(f"job {self.job_id} is {self.job.status}: nothing to do", flush=True)
            return
        me = this_process()
        self.save(pid=me.pid, pid_started_at=me.started_at, host=me.host, heartbeat_at=utcnow())
        try:
            self.wait_for_slot(me)
            self.train_and_register()
        finally:  # completed, failed or stopped: the next job in the queue may start
            with session_scope(self.sessions) as session:
                release_slot(session, self.job_id, me)

    def wait_for_slot(self, me: ProcessHandle) -> int:
        """Wait, first come first served, for one of the `job_concurrency` slots, shared by every host on this
        database (tuneforge.jobs.queue); held until the process ends."""
        while True:
            if self.stop_requested or self.status() != JobStatus.IN_PROGRESS.value:  # a lost signal must not leave it waiting
                raise StopRequested()
            slot = claim_slot(self.sessions, self.job_id, me, concurrency=self.settings.job_concurrency, executor=LOCAL)
            if slot is not None:
                return slot
            self.heartbeat({"phase": "queued"})  # on another host, a fresh heartbeat is what keeps it in the queue
            time.sleep(SLOT_POLL_SECONDS)

    def train_and_register(self) -> None:
        job = self.job
        kind = DatasetKind(job.customization_type)
        resume = self.job.attempts > 1

        # 1. validation: the base model's tokenizer, every problem of every file with its line
        self.stage("validationDetails", StageStatus.IN_PROGRESS)
        self.heartbeat({"phase": "validating"}, force=True)
        spec = foundation_spec(self.catalog, self.catalog.get(job.base_model_id))
        if spec.gguf:
            from tuneforge.inference.materialize import materialize_gguf

            materialize_gguf(Path(spec.gguf), Path(spec.checkpoint))
        checkpoint = Path(spec.checkpoint)
        hparams = parse_hyperparameters(job.hyperparameters, family=model_family(job.base_model_id),
                                        customization=job.customization_type)
        count_tokens = load_token_counter(checkpoint)
        context = context_length(check_checkpoint_dir(checkpoint)) or FALLBACK_CONTEXT
        # the row length pre-training splits documents into (and a check of maxSequenceLength against the context)
        window = training_length(kind, context=context, max_sequence_length=hparams.max_sequence_length)
        limit = record_limit(kind, context=context, max_sequence_length=hparams.max_sequence_length,
                             base_model_id=job.base_model_id, batch_size=hparams.batch_size)
        lengths = {"limit": limit, "window": window if kind == DatasetKind.CONTINUED_PRE_TRAINING else None}
        reports = [validate_dataset(job.training_data_uri, kind, count_tokens=count_tokens, role="training", **lengths)]
        reports += [validate_dataset(uri, kind, count_tokens=count_tokens, role="validation", **lengths)
                    for uri in job.validation_data_uris]
        bad = [r for r in reports if not r.ok]
        combined = check_combined(reports)
        if bad or combined:
            message = " ".join(r.failure_message() for r in bad) + "".join(f" {p}" for p in combined)
            raise InvalidInput(f"the data did not pass validation: {message.strip()}")
        hparams = self._choose_auto(hparams, reports[0], kind)
        self.stage("validationDetails", StageStatus.COMPLETED)

        # 2. data processing: read the records the trainer tokenizes
        self.stage("dataProcessingDetails", StageStatus.IN_PROGRESS)
        training = list(read_records(job.training_data_uri, kind))
        validation = [r for uri in job.validation_data_uris for r in read_records(uri, kind)]
        self.stage("dataProcessingDetails", StageStatus.COMPLETED)
        if self.stop_requested:
            raise StopRequested()

        # 3. training (the trainer writes Bedrock's metric CSVs as it goes; they are copied out at the end)
        self.stage("trainingDetails", StageStatus.IN_PROGRESS)
        # an estimate until the trainer reports its own count (pre-training packs tokens, not records, into rows)
        steps_per_epoch = math.ceil(math.ceil(reports[0].rows / hparams.batch_size) / hparams.gradient_accumulation_steps)
        total_steps = steps_per_epoch * hparams.epoch_count
        started, first_step = time.monotonic(), None
        self.heartbeat({"phase": "training", "step": 0, "totalSteps": total_steps, "epochs": hparams.epoch_count,
                        "trainingTokens": reports[0].tokens * hparams.epoch_count, **self._length_progress(reports[0])},
                       force=True)

        def on_step(m) -> None:
            nonlocal first_step
            done = m.step + 1
            first_step = m.step if first_step is None else first_step
            elapsed = time.monotonic() - started
            steps = m.total_steps or total_steps
            self.heartbeat({
                **(self.job.progress or {}),
                "phase": "training", "step": done, "totalSteps": steps, "epoch": m.epoch + 1,
                "epochs": hparams.epoch_count, "trainingLoss": m.loss, "tokensPerSecond": m.tokens_per_second,
                "tokensTrained": m.tokens_trained, "etaSeconds": elapsed / max(done - first_step, 1) * (steps - done),
                **_camel(m.metrics),
            })

        result = train(
            TrainConfig(base=checkpoint, kind=Customization(kind.value), training=training, output=self.outputs.local,
                        hparams=hparams, validation=validation or None, resume=resume),
            on_step=on_step, should_stop=self.should_stop,
        )
        self.outputs.upload(log_path=self.work_dir / LOG_NAME)
        if result.stopped:
            raise StopRequested()
        self.stage("trainingDetails", StageStatus.COMPLETED)

        # 4. register the custom model and finish
        registry = CustomModelRegistry(self.settings, self.sessions)
        model = registry.register(job, artifact_dir=result.artifact_dir, artifact_kind="adapter" if hparams.method == "lora" else "full",
                                  training_loss=result.training_loss, validation_loss=result.validation_loss)
        self.move(
            JobStatus.COMPLETED, end_time=utcnow(), output_model_arn=model.model_arn,
            training_loss=result.training_loss, validation_loss=result.validation_loss,
            progress={**(self.job.progress or {}), "phase": "completed", "step": result.steps, "totalSteps": result.steps,
                      "epoch": result.epochs, "etaSeconds": 0.0, "maxSequenceLength": result.max_len,
                      "tokensTrained": result.tokens_trained, **_camel(result.training_metrics),
                      **_camel(result.validation_metrics, prefix="validation")},
        )
        # the model is registered (encrypted when asked): drop the plaintext copies and checkpoints
        shutil.rmtree(self.outputs.local / "checkpoints", ignore_errors=True)
        shutil.rmtree(result.artifact_dir, ignore_errors=True)

    def _choose_auto(self, hparams, report, kind: DatasetKind):
        """The "auto" hyperparameters, chosen from what validation read (the same data gives the same choice when a
        restarted job chooses again), recorded with their reasons on the job."""
        if not hparams.auto:
            return hparams
        facts = DataFacts(records=report.rows, pretraining=kind == DatasetKind.CONTINUED_PRE_TRAINING,
                          preference=kind == DatasetKind.PREFERENCE_TUNING)
        chosen, reasons = choose(hparams, facts, family=model_family(self.job.base_model_id))
        self.save(chosen_hyperparameters={key: c.to_dict() for key, c in reasons.items()})
        print("hyperparameters chosen automatically: " + "; ".join(f"{k}={c.value} ({c.reason})" for k, c in reasons.items()),
              flush=True)
        return chosen

    @staticmethod
    def _length_progress(report) -> dict:
        """What validation found about lengths, for `jobs get`: records split into windows (pre-training)."""
        if report.window is None:
            return {}
        return {"windowTokens": report.window, "splitRecords": report.split_records, "splitWindows": report.split_windows}

    def finish(self, status: JobStatus, stage_status: StageStatus, message: str | None = None) -> None:
        now = utcnow()
        try:
            self.move(status, end_time=now, failure_message=message,
                      status_details=close_open_stages(self.job.status_details, stage_status, now))
        except Conflict as exc:  # never overwrite an ended job (a reconciler may have closed it)
            print(f"not recorded: {exc.message}", flush=True)

    def stopped(self, _exc: BaseException) -> None:
        if self.status() in RUNNING:
            self.finish(JobStatus.STOPPED, StageStatus.STOPPED)

    def failed(self, message: str) -> None:
        self.finish(JobStatus.FAILED, StageStatus.FAILED, message)


def _camel(metrics: dict[str, float], prefix: str = "") -> dict[str, float]:
    """The trainer's metric names (CSV columns, reward_accuracy) as progress keys (rewardAccuracy, validationRewardAccuracy)."""
    def name(column: str) -> str:
        head, *rest = column.split("_")
        words = [prefix, head, *rest] if prefix else [head, *rest]
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return {name(column): value for column, value in metrics.items()}


def main(argv: list[str] | None = None) -> int:
    job_id = (argv or sys.argv[1:])[0]
    job = JobProcess(load_settings(), job_id)
    return run_detached(job, name=f"job {job_id}", log_path=job.work_dir / LOG_NAME, stop=(StopRequested,),
                        out_of_memory="the job ran out of memory: lower batchSize or maxSequenceLength and create it again")


if __name__ == "__main__":
    sys.exit(main())
