"""Customization jobs: create, get, list, stop, and recovery of jobs whose process died.

Bedrock's CreateModelCustomizationJob semantics. The HTTP API and the CLI are thin layers over this.
A created job is stored as InProgress and handed to its own detached process (tuneforge.jobs.process),
which waits for a free slot (tuneforge.jobs.queue), validates the data, trains and registers the custom model.
`reconcile()` runs whenever a service is built: a job whose process is gone (crash, host restart) is
restarted from its last checkpoint, up to MAX_ATTEMPTS times, or marked Failed; never left InProgress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tuneforge import storage
from tuneforge.catalog.entries import Customization
from tuneforge.catalog.service import Catalog, model_id_from
from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import CustomizationJobRow, CustomModelRow
from tuneforge.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tuneforge.ids import ArnType, job_arn, new_id, parse_arn
from tuneforge.jobs.queue import release_slot
from tuneforge.jobs.spec import JobRequest
from tuneforge.jobs.states import JOB, RUNNING, TERMINAL, JobStatus, StageStatus, check_transition, close_open_stages, initial_details
from tuneforge.listing import by_creation, page
from tuneforge.processes.detached import STOP_GRACE_SECONDS, presumed_alive
from tuneforge.processes.executor import Executor
from tuneforge.processes.executors import executor_for
from tuneforge.processes.local import LOG_NAME
from tuneforge.registry.tags import check_tags, store_tags
from tuneforge.security.keyring import get_key
from tuneforge.settings import Settings
from tuneforge.training.hparams import parse_hyperparameters

MAX_ATTEMPTS = 3  # a job restarted this many times after its process died is failed instead
JOB_MODULE = "tuneforge.jobs.process"  # what a job's detached process runs

def model_family(identifier: str) -> str:
    """Which hyperparameter ranges apply: Bedrock's per-family tables for Llama 2 and Titan ids."""
    model_id = model_id_from(identifier)
    if model_id.startswith("meta.llama2"):
        return "llama2"
    if model_id.startswith("amazon.titan"):
        return "titan"
    return "default"


def require_readable(uri: str, field: str) -> None:
    """Refuse a data object that is missing or unreadable when the job is created, not after it queued and started.
    Reads one byte: that proves the object exists and that these credentials may read it."""
    try:
        with storage.open_read(uri) as f:
            f.read(1)
    except (NotFound, AccessDenied, InvalidInput) as exc:  # storage's messages name the location and the fix
        raise InvalidInput(f"{field}: {exc.message}", field=field) from exc


@dataclass(frozen=True)
class JobPage:
    jobs: list[CustomizationJobRow]
    next_token: str | None


class JobService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], catalog: Catalog, *, reconcile: bool = True,
                 executor: Executor | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.catalog = catalog
        self.executor = executor or executor_for(settings)  # TUNEFORGE_EXECUTOR: local, or a Ray cluster
        if reconcile:
            self.reconcile()

    def arn(self, base_model_id: str, job_id: str) -> str:
        return job_arn(self.settings, base_model_id, job_id)

    # ---- create ---------------------------------------------------------------------------------
    def create(self, request: JobRequest) -> CustomizationJobRow:
        if request.client_request_token:
            with self.sessions() as session:
                existing = session.scalars(
                    select(CustomizationJobRow).where(CustomizationJobRow.client_request_token == request.client_request_token)
                ).first()
            if existing is not None:  # a retry of a request we already took: same job, not a conflict
                return existing
        try:
            base = self.catalog.resolve(request.base_model_identifier)
        except NotFound as exc:
            raise NotFound(exc.message, field="baseModelIdentifier") from None
        if Customization(request.customization_type) not in base.customizations_supported:
            supported = ", ".join(base.customizations_supported) or "no customization"
            raise InvalidInput(
                f"base model {request.base_model_identifier!r} supports {supported}, not {request.customization_type}",
                field="customizationType",
            )
        parse_hyperparameters(request.hyperparameters, family=model_family(request.base_model_identifier),
                              customization=request.customization_type)
        check_tags(request.job_tags, "jobTags")
        check_tags(request.custom_model_tags, "customModelTags")  # stored on the model when the job registers it
        require_readable(request.training_data_uri, "trainingDataConfig.s3Uri")
        for i, uri in enumerate(request.validation_data_uris):
            require_readable(uri, f"validationDataConfig.validators[{i}].s3Uri")
        if request.kms_key_id:  # a missing key fails the request now, not after hours of training
            get_key(self.settings.home, request.kms_key_id)
        job_id = new_id()
        now = utcnow()
        row = CustomizationJobRow(
            job_id=job_id,
            job_arn=self.arn(base.model_id, job_id),
            job_name=request.job_name,
            client_request_token=request.client_request_token,
            custom_model_name=request.custom_model_name,
            role_arn=request.role_arn,
            base_model_id=model_id_from(request.base_model_identifier),  # an alias stays the alias (its body format)
            base_model_arn=self.catalog.get(request.base_model_identifier).arn(self.settings.region),
            customization_type=request.customization_type,
            hyperparameters=dict(request.hyperparameters),
            training_data_uri=request.training_data_uri,
            validation_data_uris=list(request.validation_data_uris),
            output_uri=request.output_uri,
            kms_key_id=request.kms_key_id,
            job_tags=[{"key": k, "value": v} for k, v in request.job_tags],
            custom_model_tags=[{"key": k, "value": v} for k, v in request.custom_model_tags],
            training_file_id=request.training_file_id,
            validation_file_id=request.validation_file_id,
            suffix=request.suffix,
            job_metadata=dict(request.metadata) if request.metadata is not None else None,
            status=JobStatus.IN_PROGRESS.value,
            status_details=initial_details(now),
            progress={},
            work_dir=str(self.settings.home / "jobs" / job_id),
            attempts=1,
            heartbeat_at=now,
            created_at=now,
            updated_at=now,
        )
        with session_scope(self.sessions) as session:
            self._check_names_free(session, request)
            session.add(row)
            store_tags(session, row.job_arn, request.job_tags)
        self._launch(row)
        return self.get(job_id)

    def _check_names_free(self, session: Session, request: JobRequest) -> None:
        if session.scalars(select(CustomizationJobRow.job_id).where(CustomizationJobRow.job_name == request.job_name)).first():
            raise Conflict(f"a customization job named {request.job_name!r} already exists: pick another jobName", field="jobName")
        taken = session.scalars(select(CustomModelRow.model_id).where(CustomModelRow.model_name == request.custom_model_name)).first()
        pending = session.scalars(
            select(CustomizationJobRow.job_id).where(
                CustomizationJobRow.custom_model_name == request.custom_model_name,
                CustomizationJobRow.status.in_(RUNNING),
            )
        ).first()
        if taken or pending:
            raise Conflict(
                f"a custom model named {request.custom_model_name!r} exists or is being trained: pick another customModelName",
                field="customModelName",
            )

    def _launch(self, row: CustomizationJobRow, attempt: int | None = None) -> None:
        # the run id names the attempt: a cluster executor submits each once, so a retried launch never runs twice
        handle = self.executor.start(JOB_MODULE, row.job_id, Path(row.work_dir), run_id=f"{row.job_id}-{attempt or row.attempts}",
                                     env={"TUNEFORGE_HOME": str(self.settings.home), "TUNEFORGE_DATABASE_URL": self.settings.database_url})
        with session_scope(self.sessions) as session:
            session.execute(
                update(CustomizationJobRow)
                .where(CustomizationJobRow.job_id == row.job_id)
                .values(pid=handle.pid, pid_started_at=handle.started_at, host=handle.host, heartbeat_at=utcnow())
            )

    # ---- read -----------------------------------------------------------------------------------
    def get(self, identifier: str) -> CustomizationJobRow:
        """By job name, id or ARN."""
        arn = parse_arn(identifier)
        job_id = arn.resource_id if arn is not None and arn.type is ArnType.CUSTOMIZATION_JOB else identifier
        with self.sessions() as session:
            row = session.scalars(
                select(CustomizationJobRow).where(
                    (CustomizationJobRow.job_arn == identifier)
                    | (CustomizationJobRow.job_name == identifier)
                    | (CustomizationJobRow.job_id == job_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"no customization job {identifier!r}: see `tuneforge jobs list`", field="jobIdentifier")
        return row

    def list(
        self,
        *,
        status: str | None = None,
        name_contains: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        ascending: bool = False,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> JobPage:
        query = select(CustomizationJobRow)
        if status:
            if status not in JobStatus.__members__.values():
                raise InvalidInput(f"statusEquals must be one of {', '.join(JobStatus)}, got {status!r}", field="statusEquals")
            query = query.where(CustomizationJobRow.status == status)
        if name_contains:
            query = query.where(CustomizationJobRow.job_name.contains(name_contains, autoescape=True))
        query = by_creation(query, CustomizationJobRow, CustomizationJobRow.job_id, created_after=created_after, created_before=created_before,
                            ascending=ascending)
        with self.sessions() as session:
            rows = session.scalars(query).all()
        items, token = page(rows, max_results=max_results, next_token=next_token)
        return JobPage(items, token)

    def count_by_status(self) -> dict[str, int]:
        with self.sessions() as session:
            rows = session.execute(select(CustomizationJobRow.status, func.count()).group_by(CustomizationJobRow.status)).all()
        return {status: count for status, count in rows}

    # ---- stop -----------------------------------------------------------------------------------
    def stop(self, identifier: str, *, wait: bool = True) -> CustomizationJobRow:
        """Ask the job to stop (it checkpoints and exits); kill its process tree if it does not within seconds."""
        row = self.get(identifier)
        check_transition(row.status, JobStatus.STOPPING, job_name=row.job_name)
        try:
            with session_scope(self.sessions) as session:
                JOB.move(session, CustomizationJobRow.status, CustomizationJobRow.job_id == row.job_id, JobStatus.STOPPING,
                         name=row.job_name, updated_at=utcnow())
        except Conflict:  # it finished (or was stopped) between our read and our write
            return self.get(identifier)
        if wait and row.pid is not None:
            self.executor.terminate_tree(row.pid, row.pid_started_at, grace_seconds=STOP_GRACE_SECONDS, host=row.host)
            self._finish_if_dead(self.get(row.job_id))
        elif row.pid is not None:
            self.executor.signal_stop(row.pid, row.pid_started_at, host=row.host)
        return self.get(row.job_id)

    # ---- recovery -------------------------------------------------------------------------------
    def reconcile(self) -> list[str]:
        """Restart or close jobs whose process is gone. Returns the ids it acted on."""
        with self.sessions() as session:
            open_jobs = session.scalars(
                select(CustomizationJobRow).where(CustomizationJobRow.status.in_(RUNNING))
            ).all()
        acted = []
        for row in open_jobs:
            if self._finish_if_dead(row):
                acted.append(row.job_id)
        return acted

    def _finish_if_dead(self, row: CustomizationJobRow) -> bool:
        if row.status not in RUNNING:
            return False  # it ended (a stopped job's process exits on its own): nothing to restart or close
        if presumed_alive(row, self.executor):
            return False
        now = utcnow()
        same_pid = CustomizationJobRow.pid.is_(None) if row.pid is None else CustomizationJobRow.pid == row.pid
        # compare-and-set on pid and status: when two processes reconcile at once, only one acts
        where = (CustomizationJobRow.job_id == row.job_id) & same_pid & (CustomizationJobRow.status == row.status)
        if row.status != JobStatus.STOPPING.value and row.attempts < MAX_ATTEMPTS:  # restart: the status stays
            with session_scope(self.sessions) as session:
                won = session.execute(update(CustomizationJobRow).where(where).values(
                    updated_at=now, heartbeat_at=now, attempts=row.attempts + 1, pid=None)).rowcount
                if won:  # the dead process's slot; the restarted one claims a slot again
                    release_slot(session, row.job_id)
            if won:
                self._launch(row, attempt=row.attempts + 1)  # resumes from its last checkpoint
            return bool(won)
        if row.status == JobStatus.STOPPING.value:
            target, stage = JobStatus.STOPPED, StageStatus.STOPPED
            message = None
        else:
            target, stage = JobStatus.FAILED, StageStatus.FAILED
            message = (f"the job's process ended unexpectedly {row.attempts} times (crash, out of memory or host restart); "
                       f"see {Path(row.work_dir) / LOG_NAME} and create the job again")
        values = {"end_time": now, "status_details": close_open_stages(row.status_details, stage, now)}
        try:
            with session_scope(self.sessions) as session:
                closed = JOB.move(session, CustomizationJobRow.status, where, target, name=row.job_name, updated_at=now,
                                  **values, **({"failure_message": message} if message else {}))
                if closed:  # the next job in the queue need not wait to find the holder dead
                    release_slot(session, row.job_id)
                return closed
        except Conflict:  # another process ended it first
            return False


def is_terminal(row: CustomizationJobRow) -> bool:
    return JobStatus(row.status) in TERMINAL
