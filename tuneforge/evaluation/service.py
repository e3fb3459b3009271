"""Evaluation jobs (Bedrock's CreateEvaluationJob, automated model evaluation): create, get, list, stop, delete, and
recovery of jobs whose process died. The HTTP API and the CLI are thin layers over this.

A created job is checked whole first (every dataset read and every line checked, every model and evaluator
resolved), stored InProgress and handed to its own detached process (tuneforge.evaluation.job), which generates each
model's responses, scores them and writes Bedrock's output layout plus a summary and an HTML report. A job whose
process died is started again (up to MAX_ATTEMPTS; it redoes its work: an evaluation is minutes, not hours) or failed.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from tuneforge import storage
from tuneforge.catalog.entries import Modality
from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import EvaluationJobRow
from tuneforge.errors import Conflict, InvalidInput, NotFound
from tuneforge.evaluation.request import EvaluationJobRequest, read_dataset, to_plan
from tuneforge.evaluation.states import EVALUATION_JOB, RUNNING, EvaluationStatus
from tuneforge.ids import ArnType, evaluation_job_arn, new_id, parse_arn
from tuneforge.listing import by_creation, page
from tuneforge.models.resolve import ModelResolver
from tuneforge.processes.detached import STOP_GRACE_SECONDS, presumed_alive
from tuneforge.processes.executor import Executor
from tuneforge.processes.executors import executor_for
from tuneforge.processes.local import LOG_NAME
from tuneforge.registry.tags import check_tags, store_tags
from tuneforge.settings import Settings

JOB_MODULE = "tuneforge.evaluation.job"
MAX_ATTEMPTS = 3
JOB_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")  # botocore's EvaluationJobName pattern


@dataclass(frozen=True)
class EvaluationPage:
    jobs: list[EvaluationJobRow]
    next_token: str | None


class EvaluationService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], models: ModelResolver, *, reconcile: bool = True,
                 executor: Executor | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.models = models
        self.executor = executor or executor_for(settings)
        if reconcile:
            self.reconcile()

    def create(self, request: EvaluationJobRequest) -> EvaluationJobRow:
        if request.client_request_token:
            with self.sessions() as session:
                existing = session.scalars(select(EvaluationJobRow).where(
                    EvaluationJobRow.client_request_token == request.client_request_token)).first()
            if existing is not None:  # a retry of a request already taken: the same job
                return existing
        self._check(request)
        job_id = new_id()
        now = utcnow()
        row = EvaluationJobRow(
            job_id=job_id, job_arn=evaluation_job_arn(self.settings, job_id), job_name=request.job_name,
            client_request_token=request.client_request_token, description=request.description, role_arn=request.role_arn,
            application_type="ModelEvaluation", evaluation_config=request.raw_evaluation_config,
            inference_config=request.raw_inference_config, plan=to_plan(request), output_uri=request.output_uri, status=EvaluationStatus.IN_PROGRESS.value,
            failure_messages=[], summary={}, progress={"phase": "starting"}, work_dir=str(self.settings.home / "evaluations" / job_id),
            attempts=1, heartbeat_at=now, created_at=now, updated_at=now,
        )
        with session_scope(self.sessions) as session:
            if session.scalars(select(EvaluationJobRow.job_id).where(EvaluationJobRow.job_name == request.job_name)).first():
                raise Conflict(f"an evaluation job named {request.job_name!r} already exists: pick another jobName", field="jobName")
            session.add(row)
            store_tags(session, row.job_arn, request.tags)
        self._launch(row)
        return self.get(job_id)

    def _check(self, request: EvaluationJobRequest) -> None:
        if not JOB_NAME.match(request.job_name):
            raise InvalidInput(f"jobName must be 1-63 lowercase letters, digits and hyphens, got {request.job_name!r}", field="jobName")
        check_tags(request.tags, "jobTags")
        try:
            storage.parse_uri(request.output_uri)
        except InvalidInput as exc:
            raise InvalidInput(f"outputDataConfig.s3Uri: {exc.message}", field="outputDataConfig.s3Uri") from exc
        for i, task in enumerate(request.tasks):
            where = f"evaluationConfig.automated.datasetMetricConfigs[{i}].dataset.datasetLocation.s3Uri"
            records = read_dataset(task.dataset_uri, field_name=where)
            for m in request.models:
                if m.precomputed and (missing := next((r for r in records if m.identifier not in r.responses), None)):
                    raise InvalidInput(f"{where}: line {missing.line} has no modelResponses entry for the precomputed source "
                                       f"{m.identifier!r}", field=where)
        for i, m in enumerate(request.models):
            if not m.precomputed:
                self._text_model(m.identifier, f"inferenceConfig.models[{i}].bedrockModel.modelIdentifier")
        for i, identifier in enumerate(request.evaluator_models):
            self._text_model(identifier, f"evaluationConfig.automated.evaluatorModelConfig.bedrockEvaluatorModels[{i}].modelIdentifier")

    def _text_model(self, identifier: str, field: str) -> None:
        found = self.models.resolve(identifier, field=field)
        entry = getattr(found, "entry", None)
        if entry is not None and Modality.TEXT not in entry.output_modalities:
            raise InvalidInput(f"{field}: {identifier!r} is not a text model (its output is "
                               f"{', '.join(entry.output_modalities)}): pick one that generates text", field=field)

    def _launch(self, row: EvaluationJobRow, attempt: int | None = None) -> None:
        handle = self.executor.start(JOB_MODULE, row.job_id, Path(row.work_dir), run_id=f"{row.job_id}-{attempt or row.attempts}",
                                     env={"TUNEFORGE_HOME": str(self.settings.home), "TUNEFORGE_DATABASE_URL": self.settings.database_url})
        with session_scope(self.sessions) as session:
            session.execute(update(EvaluationJobRow).where(EvaluationJobRow.job_id == row.job_id).values(
                pid=handle.pid, pid_started_at=handle.started_at, host=handle.host, heartbeat_at=utcnow()))

    def get(self, identifier: str) -> EvaluationJobRow:
        arn = parse_arn(identifier)
        job_id = arn.resource_id if arn is not None and arn.type is ArnType.EVALUATION_JOB else identifier
        with self.sessions() as session:
            row = session.scalars(select(EvaluationJobRow).where(
                (EvaluationJobRow.job_arn == identifier) | (EvaluationJobRow.job_name == identifier) | (EvaluationJobRow.job_id == job_id))).first()
        if row is None:
            raise NotFound(f"no evaluation job {identifier!r}: see ListEvaluationJobs", field="jobIdentifier")
        return row

    def list(self, *, status: str | None = None, name_contains: str | None = None, ascending: bool = False,
             max_results: int | None = None, next_token: str | None = None) -> EvaluationPage:
        query = select(EvaluationJobRow)
        if status:
            if status not in set(EvaluationStatus):
                raise InvalidInput(f"statusEquals must be one of {', '.join(EvaluationStatus)}, got {status!r}", field="statusEquals")
            query = query.where(EvaluationJobRow.status == status)
        if name_contains:
            query = query.where(EvaluationJobRow.job_name.contains(name_contains, autoescape=True))
        query = by_creation(query, EvaluationJobRow, EvaluationJobRow.job_id, created_after=None, created_before=None, ascending=ascending)
        with self.sessions() as session:
            rows = session.scalars(query).all()
        return EvaluationPage(*page(rows, max_results=max_results, next_token=next_token))

    def stop(self, identifier: str) -> EvaluationJobRow:
        row = self.get(identifier)
        try:
            with session_scope(self.sessions) as session:
                EVALUATION_JOB.move(session, EvaluationJobRow.status, EvaluationJobRow.job_id == row.job_id,
                                    EvaluationStatus.STOPPING, name=row.job_name, updated_at=utcnow())
        except Conflict:
            if row.status in RUNNING:  # it ended between our read and our write
                return self.get(row.job_id)
            raise
        if row.pid is not None:
            self.executor.terminate_tree(row.pid, row.pid_started_at, grace_seconds=STOP_GRACE_SECONDS, host=row.host)
        self._finish_if_dead(self.get(row.job_id))
        return self.get(row.job_id)

    def batch_delete(self, identifiers: list[str]) -> tuple[list[EvaluationJobRow], list[tuple[str, str, str]]]:
        """Delete ended jobs (their work files too; their outputs stay where they were written). Returns the deleted
        rows and (identifier, code, message) for each that could not be."""
        deleted, errors = [], []
        for identifier in identifiers:
            try:
                row = self.get(identifier)
                with session_scope(self.sessions) as session:
                    EVALUATION_JOB.move(session, EvaluationJobRow.status, EvaluationJobRow.job_id == row.job_id,
                                        EvaluationStatus.DELETING, name=row.job_name)
                    session.execute(delete(EvaluationJobRow).where(EvaluationJobRow.job_id == row.job_id))
                shutil.rmtree(row.work_dir, ignore_errors=True)
                deleted.append(row)
            except NotFound as exc:
                errors.append((identifier, "404", exc.message))
            except Conflict as exc:
                errors.append((identifier, "409", exc.message + ": stop it first"))
        return deleted, errors

    def reconcile(self) -> list[str]:
        with self.sessions() as session:
            rows = session.scalars(select(EvaluationJobRow).where(EvaluationJobRow.status.in_(RUNNING))).all()
        return [row.job_id for row in rows if self._finish_if_dead(row)]

    def _finish_if_dead(self, row: EvaluationJobRow) -> bool:
        if row.status not in RUNNING or presumed_alive(row, self.executor):
            return False
        now = utcnow()
        same_pid = EvaluationJobRow.pid.is_(None) if row.pid is None else EvaluationJobRow.pid == row.pid
        where = (EvaluationJobRow.job_id == row.job_id) & same_pid & (EvaluationJobRow.status == row.status)
        if row.status == EvaluationStatus.IN_PROGRESS.value and row.attempts < MAX_ATTEMPTS:
            with session_scope(self.sessions) as session:
                won = session.execute(update(EvaluationJobRow).where(where).values(
                    updated_at=now, heartbeat_at=now, attempts=row.attempts + 1, pid=None)).rowcount
            if won:
                self._launch(row, attempt=row.attempts + 1)
            return bool(won)
        stopping = row.status == EvaluationStatus.STOPPING.value
        messages = [] if stopping else [f"the job's process ended unexpectedly {row.attempts} times; see "
                                        f"{Path(row.work_dir) / LOG_NAME} and create the job again"]
        try:
            with session_scope(self.sessions) as session:
                return EVALUATION_JOB.move(session, EvaluationJobRow.status, where,
                                           EvaluationStatus.STOPPED if stopping else EvaluationStatus.FAILED,
                                           name=row.job_name, updated_at=now, end_time=now,
                                           failure_messages=[*row.failure_messages, *messages])
        except Conflict:
            return False
