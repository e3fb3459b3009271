"""The metadata store's tables. Tables only: no logic.

Later capabilities (customization jobs, custom models, provisioned throughput, knowledge bases) add their
tables here with a migration each, reusing `Timestamps`. JSON columns hold lists and small documents that
are always read whole; anything filtered on is a real column.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Dialect, ForeignKey, Integer, MetaData, String, TypeDecorator
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations generated on SQLite and PostgreSQL agree.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: the only kind of datetime the tables accept."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores no zone and would hand back naive values).

    Stored as UTC everywhere, so SQLite's text timestamps still sort and compare correctly. Naive datetimes
    are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column: use tuneforge.db.utcnow()")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Every table. Its metadata is what the migrations must match (tests/test_db.py checks)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _same_as_created_at(context: DefaultExecutionContext) -> datetime:
    # A new row was last modified when it was created, to the microsecond (two utcnow() calls differ).
    return context.get_current_parameters()["created_at"]


class Timestamps:
    """created_at and updated_at (UTC), set by SQLAlchemy on insert and on every ORM or Core update.

    The defaults are Python-side, not server defaults: rows written with raw SQL must set both.
    """

    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=_same_as_created_at, onupdate=utcnow, nullable=False
    )


class FoundationModelRow(Timestamps, Base):
    """A base model a user registered (built-in models live in code: tuneforge.catalog.builtin)."""

    __tablename__ = "foundation_models"

    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200))
    provider_name: Mapped[str] = mapped_column(String(100))
    source_kind: Mapped[str] = mapped_column(String(20))  # local | hub
    source: Mapped[str] = mapped_column(String(1024))  # the directory, or the hub id
    checkpoint_path: Mapped[str] = mapped_column(String(1024))
    input_modalities: Mapped[list[str]] = mapped_column(JSON)
    output_modalities: Mapped[list[str]] = mapped_column(JSON)
    customizations_supported: Mapped[list[str]] = mapped_column(JSON)
    inference_types_supported: Mapped[list[str]] = mapped_column(JSON)
    response_streaming_supported: Mapped[bool] = mapped_column(Boolean, default=True)
    body_format: Mapped[str | None] = mapped_column(String(20), nullable=True)
    context_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lifecycle_status: Mapped[str] = mapped_column(String(20), default="ACTIVE")


class ModelAliasRow(Timestamps, Base):
    """A Bedrock model id served by a catalog model. No foreign key: the target may be built in."""

    __tablename__ = "model_aliases"

    alias_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    target_model_id: Mapped[str] = mapped_column(String(200))
    body_format: Mapped[str | None] = mapped_column(String(20), nullable=True)


class ResourceTagRow(Timestamps, Base):
    """Tags of any resource, by ARN (Bedrock's TagResource / ListTagsForResource)."""

    __tablename__ = "resource_tags"

    resource_arn: Mapped[str] = mapped_column(String(1024), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class CustomizationJobRow(Timestamps, Base):
    """A model customization job (Bedrock CreateModelCustomizationJob). `updated_at` is lastModifiedTime.

    The process columns (pid, pid_started_at, host, heartbeat_at, attempts) let any process tell a live job
    from one whose process died with its host, and restart or fail it (tuneforge.jobs.service.reconcile).
    """

    __tablename__ = "customization_jobs"

    job_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    job_arn: Mapped[str] = mapped_column(String(1011), unique=True)
    job_name: Mapped[str] = mapped_column(String(63), unique=True)
    client_request_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    custom_model_name: Mapped[str] = mapped_column(String(63))
    role_arn: Mapped[str] = mapped_column(String(2048))
    base_model_id: Mapped[str] = mapped_column(String(200))
    base_model_arn: Mapped[str] = mapped_column(String(1011))
    customization_type: Mapped[str] = mapped_column(String(40))
    hyperparameters: Mapped[dict] = mapped_column(JSON)
    training_data_uri: Mapped[str] = mapped_column(String(1024))
    validation_data_uris: Mapped[list[str]] = mapped_column(JSON)
    output_uri: Mapped[str] = mapped_column(String(1024))
    kms_key_id: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    job_tags: Mapped[list[dict]] = mapped_column(JSON)
    custom_model_tags: Mapped[list[dict]] = mapped_column(JSON)

    status: Mapped[str] = mapped_column(String(20), index=True)  # InProgress Completed Failed Stopping Stopped
    status_details: Mapped[dict] = mapped_column(JSON)  # validation/dataProcessing/training -> status + times
    failure_message: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    progress: Mapped[dict] = mapped_column(JSON)  # epoch, step, total steps, loss, tokens/s, ETA
    training_loss: Mapped[float | None] = mapped_column(nullable=True)
    validation_loss: Mapped[float | None] = mapped_column(nullable=True)
    output_model_arn: Mapped[str | None] = mapped_column(String(1011), nullable=True)
    work_dir: Mapped[str] = mapped_column(String(1024))

    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started_at: Mapped[float | None] = mapped_column(nullable=True)  # guards against pid reuse
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # set when the job came through OpenAI's /v1/fine_tuning/jobs: the uploaded files it trains on, its suffix and metadata
    training_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    validation_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_metadata: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # hyperparameters given as "auto": {name: {"value", "reason"}}, once the job has read its data and chosen them
    chosen_hyperparameters: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class JobSlotRow(Base):
    """One of the TUNEFORGE_JOB_CONCURRENCY slots, while a customization job's process holds it (tuneforge.jobs.queue).

    A row exists only while its slot is taken, so a claim is one INSERT that the primary key lets one process win,
    on SQLite and PostgreSQL alike; the holder's process columns say who to ask whether it still runs.
    """

    __tablename__ = "job_slots"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 0 .. job_concurrency-1
    job_id: Mapped[str] = mapped_column(String(12), ForeignKey("customization_jobs.job_id", ondelete="CASCADE"), unique=True)
    pid: Mapped[int] = mapped_column(Integer)
    pid_started_at: Mapped[float] = mapped_column()
    host: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CustomModelRow(Timestamps, Base):
    """A model produced by a customization job: its weights (adapter or full) live in `artifact_dir`."""

    __tablename__ = "custom_models"

    model_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    model_arn: Mapped[str] = mapped_column(String(1011), unique=True)
    model_name: Mapped[str] = mapped_column(String(63), unique=True)
    job_id: Mapped[str | None] = mapped_column(String(12), nullable=True)
    job_arn: Mapped[str | None] = mapped_column(String(1011), nullable=True)
    job_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    base_model_id: Mapped[str] = mapped_column(String(200))
    base_model_arn: Mapped[str] = mapped_column(String(1011))
    customization_type: Mapped[str] = mapped_column(String(40))
    hyperparameters: Mapped[dict] = mapped_column(JSON)
    training_data_uri: Mapped[str] = mapped_column(String(1024))
    validation_data_uris: Mapped[list[str]] = mapped_column(JSON)
    output_uri: Mapped[str] = mapped_column(String(1024))
    training_loss: Mapped[float | None] = mapped_column(nullable=True)
    validation_loss: Mapped[float | None] = mapped_column(nullable=True)
    model_status: Mapped[str] = mapped_column(String(20))  # Active | Creating | Failed
    failure_message: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    artifact_dir: Mapped[str] = mapped_column(String(1024))
    artifact_kind: Mapped[str] = mapped_column(String(20))  # adapter | full
    kms_key_id: Mapped[str | None] = mapped_column(String(2048), nullable=True)


class ProvisionedModelRow(Timestamps, Base):
    """A provisioned throughput: a base or custom model served by `model_units` worker processes.

    `desired_*` is what the last create/update asked for; `model_arn`/`model_units` what is serving now.
    They differ while the status is Creating or Updating. Tags live in resource_tags.
    """

    __tablename__ = "provisioned_models"

    provisioned_model_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    provisioned_model_arn: Mapped[str] = mapped_column(String(1011), unique=True)
    provisioned_model_name: Mapped[str] = mapped_column(String(63), unique=True)
    client_request_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    model_arn: Mapped[str] = mapped_column(String(1011))
    desired_model_arn: Mapped[str] = mapped_column(String(1011))
    foundation_model_arn: Mapped[str] = mapped_column(String(1011))
    model_units: Mapped[int] = mapped_column(Integer)
    desired_model_units: Mapped[int] = mapped_column(Integer)
    commitment_duration: Mapped[str | None] = mapped_column(String(20), nullable=True)
    commitment_expiration_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # Creating InService Updating Failed
    failure_message: Mapped[str | None] = mapped_column(String(4096), nullable=True)


class CustomModelDeploymentRow(Timestamps, Base):
    """An on-demand custom model deployment (Bedrock CreateCustomModelDeployment): a custom model served on demand
    by the server's worker pool, with no dedicated units. Tags live in resource_tags."""

    __tablename__ = "custom_model_deployments"

    deployment_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    deployment_arn: Mapped[str] = mapped_column(String(1011), unique=True)
    deployment_name: Mapped[str] = mapped_column(String(63), unique=True)
    client_request_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    model_arn: Mapped[str] = mapped_column(String(1011), index=True)
    description: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # Creating Active Failed
    update_model_arn: Mapped[str | None] = mapped_column(String(1011), nullable=True)  # the last update's target
    update_status: Mapped[str | None] = mapped_column(String(20), nullable=True)  # Updating UpdateCompleted UpdateFailed
    failure_message: Mapped[str | None] = mapped_column(String(4096), nullable=True)


class BatchJobRow(Timestamps, Base):
    """A batch inference job (Bedrock CreateModelInvocationJob), run by its own process (tuneforge.batch.process).
    `created_at` is submitTime, `updated_at` lastModifiedTime; the process columns work as in CustomizationJobRow."""

    __tablename__ = "model_invocation_jobs"

    job_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    job_arn: Mapped[str] = mapped_column(String(1011), unique=True)
    job_name: Mapped[str] = mapped_column(String(63), unique=True)
    client_request_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    role_arn: Mapped[str] = mapped_column(String(2048))
    model_id: Mapped[str] = mapped_column(String(2048))  # as given: the job resolves it when it starts its worker
    invocation_type: Mapped[str] = mapped_column(String(20))  # InvokeModel | Converse
    input_config: Mapped[dict] = mapped_column(JSON)  # s3InputDataConfig as sent
    output_config: Mapped[dict] = mapped_column(JSON)  # s3OutputDataConfig as sent
    vpc_config: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    timeout_hours: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())  # jobExpirationTime
    status: Mapped[str] = mapped_column(String(20), index=True)  # tuneforge.batch.states.BatchStatus
    message: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    counts: Mapped[dict] = mapped_column(JSON)  # the manifest's record and token counts, as the job last wrote them
    progress: Mapped[dict] = mapped_column(JSON)  # phase, records/s, output tokens/s
    work_dir: Mapped[str] = mapped_column(String(1024))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started_at: Mapped[float | None] = mapped_column(nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class BatchSlotRow(Base):
    """One of the TUNEFORGE_BATCH_CONCURRENCY slots while a batch job's process holds it (tuneforge.batch.queue);
    claimed and freed as JobSlotRow is."""

    __tablename__ = "batch_job_slots"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    job_id: Mapped[str] = mapped_column(String(12), ForeignKey("model_invocation_jobs.job_id", ondelete="CASCADE"), unique=True)
    pid: Mapped[int] = mapped_column(Integer)
    pid_started_at: Mapped[float] = mapped_column()
    host: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class KnowledgeBaseRow(Timestamps, Base):
    """A knowledge base (Bedrock CreateKnowledgeBase). Its chunks live in the vector store that
    `storage` names (tuneforge.knowledge.stores.open_store); the embedding model is fixed at creation."""

    __tablename__ = "knowledge_bases"

    knowledge_base_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    knowledge_base_arn: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role_arn: Mapped[str] = mapped_column(String(2048))
    client_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    knowledge_base_configuration: Mapped[dict] = mapped_column(JSON)  # as sent
    storage_configuration: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # as sent; None = embedded SQLite
    storage: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the same, checked (knowledge.stores.storage_record)
    embedding_model_id: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    embedding_max_tokens: Mapped[int] = mapped_column(Integer)  # word pieces the embedding model reads per chunk
    status: Mapped[str] = mapped_column(String(24))
    failure_reasons: Mapped[list[str]] = mapped_column(JSON)


class DataSourceRow(Timestamps, Base):
    """Where a knowledge base's documents come from (Bedrock CreateDataSource) and how they are chunked."""

    __tablename__ = "kb_data_sources"

    data_source_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    knowledge_base_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.knowledge_base_id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    client_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    data_source_configuration: Mapped[dict] = mapped_column(JSON)  # as sent
    location_uri: Mapped[str] = mapped_column(String(2048))  # s3://bucket/prefix or a local folder, as listed
    vector_ingestion_configuration: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    data_deletion_policy: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(24))
    failure_reasons: Mapped[list[str]] = mapped_column(JSON)


class IngestionJobRow(Timestamps, Base):
    """One sync of a data source into its knowledge base (Bedrock StartIngestionJob), run by its own process
    (tuneforge.knowledge.ingest_process); the process columns work as in CustomizationJobRow."""

    __tablename__ = "kb_ingestion_jobs"

    ingestion_job_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    knowledge_base_id: Mapped[str] = mapped_column(String(10), index=True)
    data_source_id: Mapped[str] = mapped_column(ForeignKey("kb_data_sources.data_source_id", ondelete="CASCADE"), index=True)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    client_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(12), index=True)  # STARTING IN_PROGRESS COMPLETE FAILED STOPPING STOPPED
    statistics: Mapped[dict] = mapped_column(JSON)  # Bedrock's IngestionJobStatistics
    failure_reasons: Mapped[list[str]] = mapped_column(JSON)  # one per failed document: "uri: reason"
    progress: Mapped[dict] = mapped_column(JSON)  # phase, documents done / total
    work_dir: Mapped[str] = mapped_column(String(1024))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started_at: Mapped[float | None] = mapped_column(nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class KbDocumentRow(Timestamps, Base):
    """A document indexed from a data source, with the hashes incremental sync compares."""

    __tablename__ = "kb_documents"

    data_source_id: Mapped[str] = mapped_column(ForeignKey("kb_data_sources.data_source_id", ondelete="CASCADE"), primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), primary_key=True)
    knowledge_base_id: Mapped[str] = mapped_column(String(10), index=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the sidecar's, if any
    chunk_count: Mapped[int] = mapped_column(Integer)


class RagSessionRow(Timestamps, Base):
    """A RetrieveAndGenerate conversation: its turns (question, standalone query, answer) in order."""

    __tablename__ = "rag_sessions"

    session_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    knowledge_base_id: Mapped[str | None] = mapped_column(String(10), nullable=True)
    turns: Mapped[list[dict]] = mapped_column(JSON)


class AccessKeyRow(Timestamps, Base):
    """An API access key tuneforge issued. The secret is stored encrypted (AES-GCM under a keyring key), not
    hashed: SigV4 needs the plaintext secret to recompute each request's signature."""

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    secret_ciphertext: Mapped[str] = mapped_column(String(512))  # base64 of nonce | AES-GCM(secret)
    # keyed HMAC of the secret: finds the key of a bearer token that carries only the secret, in one lookup
    secret_digest: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AuditEventRow(Base):
    """One mutating API call: who, what, on which resource, and how it ended."""

    __tablename__ = "audit_events"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    access_key_id: Mapped[str | None] = mapped_column(String(20), nullable=True)  # None when serving with --no-auth
    service: Mapped[str] = mapped_column(String(40))
    operation: Mapped[str] = mapped_column(String(80))
    resource: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    status_code: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(80), nullable=True)


class FileRow(Timestamps, Base):
    """An uploaded file (OpenAI's /v1/files): its bytes live at `uri`, checked line by line for its purpose on upload."""

    __tablename__ = "files"

    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(40), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(Integer)  # JSON lines it holds
    uri: Mapped[str] = mapped_column(String(1024))


class OpenAIBatchRow(Timestamps, Base):
    """An OpenAI batch (/v1/batches): the model invocation job that runs it, the file it read, the files it wrote."""

    __tablename__ = "openai_batches"

    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(12), ForeignKey("model_invocation_jobs.job_id", ondelete="CASCADE"), unique=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(40))
    output_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    refused: Mapped[dict] = mapped_column(JSON)  # custom_id -> why its request could not be sent (line checked at create)
    batch_metadata: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class EvaluationJobRow(Timestamps, Base):
    """An evaluation job (CreateEvaluationJob): the request as sent, its status, its process and its summary."""

    __tablename__ = "evaluation_jobs"

    job_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    job_arn: Mapped[str] = mapped_column(String(1011), unique=True)
    job_name: Mapped[str] = mapped_column(String(63), unique=True)
    client_request_token: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role_arn: Mapped[str] = mapped_column(String(2048))
    application_type: Mapped[str] = mapped_column(String(20))
    evaluation_config: Mapped[dict] = mapped_column(JSON)  # as sent: GetEvaluationJob returns it so
    inference_config: Mapped[dict] = mapped_column(JSON)
    plan: Mapped[dict] = mapped_column(JSON)  # the typed request, as the job's process reads it (tuneforge.evaluation.request)
    output_uri: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(20), index=True)  # tuneforge.evaluation.states.EvaluationStatus
    failure_messages: Mapped[list[str]] = mapped_column(JSON)
    summary: Mapped[dict] = mapped_column(JSON)  # model -> task -> metric -> mean, and where the report is
    progress: Mapped[dict] = mapped_column(JSON)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    work_dir: Mapped[str] = mapped_column(String(1024))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started_at: Mapped[float | None] = mapped_column(nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
