"""Batch inference jobs: create, get, list, stop, and recovery of jobs whose process died. Bedrock's
CreateModelInvocationJob semantics, without HTTP; the API and the CLI are thin layers over this.

    batch = BatchService(settings, sessions, models, custom_deployments)     # reconciles when built
    row = batch.create(BatchJobRequest(job_name="summaries", role_arn=..., model_id="tiny",
                                       input_uri="s3://b/in/records.jsonl", output_uri="s3://b/out/"))
    batch.get(row.job_arn).status     # Submitted -> Validating -> Scheduled -> InProgress -> Completed

Create checks what can be checked at once (names, the model, the input is there and is JSONL) and answers a
ValidationException naming the field; the job then runs in its own detached process (tuneforge.batch.process).
A job whose process is gone is restarted (it resumes without redoing finished records) up to MAX_ATTEMPTS times,
or closed: Stopped when it was stopping, else Failed. Never left running in its row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tuneforge import storage
from tuneforge.batch.queue import release_slot
from tuneforge.batch.records import OUTPUT_FIELD, check_jsonl, input_files, open_logs, publish
from tuneforge.batch.request import DEFAULT_TIMEOUT_HOURS, BatchJobRequest, InvocationType
from tuneforge.batch.states import BATCH_JOB, OPEN, TERMINAL, BatchStatus
from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import BatchJobRow
from tuneforge.errors import Conflict, InvalidInput, NotFound, TuneforgeError
from tuneforge.ids import ArnType, invocation_job_arn, new_id, parse_arn
from tuneforge.listing import by_creation, page
from tuneforge.models.resolve import ModelResolver
from tuneforge.processes.detached import STOP_GRACE_SECONDS, presumed_alive
from tuneforge.processes.executor import Executor
from tuneforge.processes.executors import executor_for
from tuneforge.processes.local import LOG_NAME
from tuneforge.registry.tags import check_tags, store_tags
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.serving.loadable import loadable_model
from tuneforge.settings import Settings

MAX_ATTEMPTS = 3  # a job restarted this many times after its process died is failed instead
BATCH_MODULE = "tuneforge.batch.process"
# botocore's patterns for the fields it does not check itself (it checks only types and required members)
JOB_NAME = re.compile(r"^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9+\-.]){0,63}$")
ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")
TOKEN = re.compile(r"^[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}$")
TIMEOUT_HOURS = (24, 168)


@dataclass(frozen=True)
class BatchJobPage:
    jobs: list[BatchJobRow]
    next_token: str | None


class BatchService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], models: ModelResolver,
                 deployments: CustomModelDeployments, *, reconcile: bool = True, executor: Executor | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.models = models
        self.deployments = deployments
        self.executor = executor or executor_for(settings)  # TUNEFORGE_EXECUTOR: local, or a Ray cluster
        if reconcile:
            self.reconcile()

    # ---- create ---------------------------------------------------------------------------------
    def create(self, request: BatchJobRequest) -> BatchJobRow:
        if request.client_request_token:
            if not TOKEN.match(request.client_request_token):
                raise InvalidInput("clientRequestToken must be 1-256 letters, digits and hyphens", field="clientRequestToken")
            with self.sessions() as session:
                existing = session.scalars(select(BatchJobRow).where(
                    BatchJobRow.client_request_token == request.client_request_token)).first()
            if existing is not None:  # a retry of a request we already took: the same job, not a conflict
                return existing
        self._check(request)
        job_id = new_id()
        now = utcnow()
        hours = request.timeout_hours or DEFAULT_TIMEOUT_HOURS
        row = BatchJobRow(
            job_id=job_id, job_arn=invocation_job_arn(self.settings, job_id), job_name=request.job_name,
            client_request_token=request.client_request_token, role_arn=request.role_arn, model_id=request.model_id,
            invocation_type=request.invocation_type,
            input_config=_drop_none({"s3InputFormat": request.input_format, "s3Uri": request.input_uri,
                                     "s3BucketOwner": request.input_bucket_owner}),
            output_config=_drop_none({"s3Uri": request.output_uri, "s3BucketOwner": request.output_bucket_owner}),
            vpc_config=request.vpc_config, timeout_hours=hours, expires_at=now + timedelta(hours=hours),
            status=BatchStatus.SUBMITTED.value, counts={}, progress={}, work_dir=str(self.settings.home / "batch" / job_id),
            attempts=1, heartbeat_at=now, created_at=now, updated_at=now,
        )
        with session_scope(self.sessions) as session:
            if session.scalars(select(BatchJobRow.job_id).where(BatchJobRow.job_name == request.job_name)).first():
                raise Conflict(f"a model invocation job named {request.job_name!r} already exists: pick another jobName", field="jobName")
            session.add(row)
            store_tags(session, row.job_arn, request.tags)
        self._launch(row)
        return self.get(job_id)

    def _check(self, request: BatchJobRequest) -> None:
        """Everything that can fail before the job exists, each error naming its field."""
        if not JOB_NAME.match(request.job_name) or len(request.job_name) > 63:
            raise InvalidInput(f"jobName must be 1-63 letters, digits, '+', '-' or '.', starting with a letter or digit; "
                               f"got {request.job_name!r}", field="jobName")
        if not ROLE_ARN.match(request.role_arn):
            raise InvalidInput(f"roleArn must be an IAM role ARN (arn:aws:iam::123456789012:role/name), got {request.role_arn!r}",
                               field="roleArn")
        if request.invocation_type not in set(InvocationType):
            raise InvalidInput(f"modelInvocationType must be one of {', '.join(InvocationType)}, got {request.invocation_type!r}",
                               field="modelInvocationType")
        low, high = TIMEOUT_HOURS
        if request.timeout_hours is not None and not low <= request.timeout_hours <= high:
            raise InvalidInput(f"timeoutDurationInHours must be between {low} and {high}, got {request.timeout_hours}",
                               field="timeoutDurationInHours")
        if request.input_format not in (None, "JSONL"):
            raise InvalidInput(f"inputDataConfig.s3InputDataConfig.s3InputFormat must be JSONL, got {request.input_format!r}",
                               field="inputDataConfig.s3InputDataConfig.s3InputFormat")
        if request.output_kms_key_id:  # refused rather than ignored: the output would not be encrypted as asked
            raise InvalidInput("outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId is not supported: leave it out "
                               "(the output is written as the bucket's default encryption has it)",
                               field="outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId")
        check_tags(request.tags, "tags")
        try:
            storage.parse_uri(request.output_uri)
        except InvalidInput as exc:
            raise InvalidInput(f"{OUTPUT_FIELD}: {exc.message}", field=OUTPUT_FIELD) from exc
        loadable_model(self.models, self.deployments, request.model_id)
        check_jsonl(input_files(request.input_uri))

    def _launch(self, row: BatchJobRow, attempt: int | None = None) -> None:
        # one run id per attempt: a cluster executor submits each once, so a retried launch never runs twice
        handle = self.executor.start(BATCH_MODULE, row.job_id, Path(row.work_dir), run_id=f"{row.job_id}-{attempt or row.attempts}", env={
            "TUNEFORGE_HOME": str(self.settings.home), "TUNEFORGE_DATABASE_URL": self.settings.database_url})
        with session_scope(self.sessions) as session:
            session.execute(update(BatchJobRow).where(BatchJobRow.job_id == row.job_id).values(
                pid=handle.pid, pid_started_at=handle.started_at, host=handle.host, heartbeat_at=utcnow()))

    # ---- read -----------------------------------------------------------------------------------
    def get(self, identifier: str) -> BatchJobRow:
        """By ARN, id or name."""
        arn = parse_arn(identifier)
        job_id = arn.resource_id if arn is not None and arn.type is ArnType.INVOCATION_JOB else identifier
        with self.sessions() as session:
            row = session.scalars(select(BatchJobRow).where(
                (BatchJobRow.job_arn == identifier) | (BatchJobRow.job_id == job_id) | (BatchJobRow.job_name == identifier))).first()
        if row is None:
            raise NotFound(f"no model invocation job {identifier!r}: see `tuneforge batch list` (ListModelInvocationJobs)",
                           field="jobIdentifier")
        return row

    def list(self, *, status: str | None = None, name_contains: str | None = None, submitted_after: datetime | None = None,
             submitted_before: datetime | None = None, ascending: bool = False, max_results: int | None = None,
             next_token: str | None = None) -> BatchJobPage:
        query = select(BatchJobRow)
        if status:
            if status not in set(BatchStatus):
                raise InvalidInput(f"statusEquals must be one of {', '.join(BatchStatus)}, got {status!r}", field="statusEquals")
            query = query.where(BatchJobRow.status == status)
        if name_contains:
            query = query.where(BatchJobRow.job_name.contains(name_contains, autoescape=True))
        query = by_creation(query, BatchJobRow, BatchJobRow.job_id, created_after=submitted_after,
                            created_before=submitted_before, ascending=ascending)
        with self.sessions() as session:
            rows = session.scalars(query).all()
        items, token = page(rows, max_results=max_results, next_token=next_token)
        return BatchJobPage(items, token)

    def count_by_status(self) -> dict[str, int]:
        with self.sessions() as session:
            return dict(session.execute(select(BatchJobRow.status, func.count()).group_by(BatchJobRow.status)).all())

    # ---- stop -----------------------------------------------------------------------------------
    def stop(self, identifier: str, *, wait: bool = True) -> BatchJobRow:
        """Stopping; its process stops sending records, publishes what finished and ends Stopped (killed if it has
        not within seconds, when `wait`)."""
        row = self.get(identifier)
        BATCH_JOB.check(row.status, BatchStatus.STOPPING, name=row.job_name)
        try:
            with session_scope(self.sessions) as session:
                BATCH_JOB.move(session, BatchJobRow.status, BatchJobRow.job_id == row.job_id, BatchStatus.STOPPING,
                               name=row.job_name, updated_at=utcnow())
        except Conflict:  # it ended between our read and our write
            return self.get(row.job_id)
        if row.pid is not None and wait:
            self.executor.terminate_tree(row.pid, row.pid_started_at, grace_seconds=STOP_GRACE_SECONDS, host=row.host)
            self._finish_if_dead(self.get(row.job_id))
        elif row.pid is not None:
            self.executor.signal_stop(row.pid, row.pid_started_at, host=row.host)
        return self.get(row.job_id)

    # ---- recovery -------------------------------------------------------------------------------
    def reconcile(self) -> list[str]:
        """Restart or close jobs whose process is gone. Returns the ids it acted on."""
        with self.sessions() as session:
            open_jobs = session.scalars(select(BatchJobRow).where(BatchJobRow.status.in_(OPEN))).all()
        return [row.job_id for row in open_jobs if self._finish_if_dead(row)]

    def _finish_if_dead(self, row: BatchJobRow) -> bool:
        if row.status not in OPEN or presumed_alive(row, self.executor):
            return False
        now = utcnow()
        same_pid = BatchJobRow.pid.is_(None) if row.pid is None else BatchJobRow.pid == row.pid
        # compare-and-set on pid and status: when two processes reconcile at once, only one acts
        where = (BatchJobRow.job_id == row.job_id) & same_pid & (BatchJobRow.status == row.status)
        if row.status != BatchStatus.STOPPING.value and row.attempts < MAX_ATTEMPTS:  # restart; the status stays
            with session_scope(self.sessions) as session:
                won = session.execute(update(BatchJobRow).where(where).values(
                    updated_at=now, heartbeat_at=now, attempts=row.attempts + 1, pid=None)).rowcount
                if won:
                    release_slot(session, row.job_id)
            if won:
                self._launch(row, attempt=row.attempts + 1)  # it re-reads its results and sends only the records not done
            return bool(won)
        if row.status == BatchStatus.STOPPING.value:
            target, message = BatchStatus.STOPPED, row.message
        else:
            target = BatchStatus.FAILED
            message = (f"the job's process ended unexpectedly {row.attempts} times (crash, out of memory or host restart); "
                       f"see {Path(row.work_dir) / LOG_NAME} and create the job again")
        try:
            with session_scope(self.sessions) as session:
                closed = BATCH_JOB.move(session, BatchJobRow.status, where, target, name=row.job_name, updated_at=now,
                                        end_time=now, message=message)
                if closed:
                    release_slot(session, row.job_id)
        except Conflict:  # another process ended it first
            return False
        if closed:
            self._publish_what_finished(row, message)
        return closed

    def _publish_what_finished(self, row: BatchJobRow, message: str | None) -> None:
        """A job closed here (its process gone) still leaves the records it finished in its output folder."""
        if not (Path(row.work_dir) / "results").exists():
            return  # it never started inferring
        try:
            files = input_files(row.input_config["s3Uri"])
            logs = open_logs(Path(row.work_dir), files)
            try:
                manifest = publish(row.output_config["s3Uri"], row.job_id, files, logs, (row.counts or {}).get("totalRecordCount", 0))
            finally:
                for log in logs:
                    log.close()
        except TuneforgeError as exc:  # the input or the output location went away meanwhile: the row says so
            manifest, note = row.counts, f"; its output could not be written: {exc.message}"
        else:
            note = ""
        with session_scope(self.sessions) as session:
            session.execute(update(BatchJobRow).where(BatchJobRow.job_id == row.job_id).values(
                counts=manifest, message=((message or "") + note).removeprefix("; ")[:2048] or None))


def is_terminal(row: BatchJobRow) -> bool:
    return BatchStatus(row.status) in TERMINAL


def _drop_none(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}
