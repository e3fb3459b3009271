"""Knowledge bases, data sources and ingestion jobs: Bedrock's bedrock-agent semantics, without HTTP.

    kbs = KnowledgeBaseService(settings, sessions, catalog)
    kb = kbs.create_knowledge_base(KnowledgeBaseRequest(name="docs", role_arn=ROLE,
                                                        embedding_model="sentence-transformers.all-minilm-l6-v2"))
    ds = kbs.create_data_source(kb.knowledge_base_id, DataSourceRequest(name="laws", location="s3://my-bucket/laws/"))
    job = kbs.start_ingestion_job(kb.knowledge_base_id, ds.data_source_id)   # runs in its own process

Requests are typed (tuneforge.knowledge.requests) and built once at the edge from Bedrock's shapes
(tuneforge.wire.knowledge); every status write goes through the lifecycles of tuneforge.knowledge.states.

Where documents come from (dataSourceConfiguration, type S3; tuneforge.wire.knowledge.data_source_location):
- `bucketArn` `arn:aws:s3:::BUCKET` with at most one `inclusionPrefixes` entry: the objects under
  s3://BUCKET/PREFIX, read through tuneforge.storage (so any S3 endpoint boto3 is configured for).
- a local folder (a tuneforge extension, for self-hosting): `bucketArn` `file:///absolute/folder`; an
  inclusion prefix then selects files under the folder whose relative path starts with it.

The embedding model (`embeddingModelArn`: a catalog model id or foundation-model ARN whose output modality
is EMBEDDING) is fixed at creation; its dimension and token limit are recorded. A knowledge base created
with a `storageConfiguration` keeps its chunks where that says (tuneforge.knowledge.stores.open_store);
without one, in an embedded SQLite store in the data directory.

Chunk sizes must fit the embedding model, which reads at most `max_seq_length` word pieces (all-MiniLM-L6-v2:
256, so 254 tokens of text). A chunkingConfiguration whose chunks could be longer is refused at
CreateDataSource, naming the field. Default chunking (Bedrock: ~300 tokens) uses min(300, that limit).
With NONE (one chunk per file), a file longer than the limit fails ingestion with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.catalog.builtin import package_path
from tuneforge.catalog.entries import Modality, SourceKind
from tuneforge.catalog.service import Catalog, model_id_from
from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import DataSourceRow, IngestionJobRow, KbDocumentRow, KnowledgeBaseRow
from tuneforge.documents.chunking_config import ChunkingSettings, ChunkingStrategy
from tuneforge.errors import Conflict, InvalidInput, NotFound
from tuneforge.ids import knowledge_base_arn, new_agent_id
from tuneforge.knowledge.embedding import EmbeddingModelFacts, embedding_model_facts
from tuneforge.knowledge.requests import DataDeletionPolicy, DataSourceRequest, IngestionRequest, KnowledgeBaseRequest
from tuneforge.knowledge.states import (
    DATA_SOURCE,
    INGESTION_JOB,
    KNOWLEDGE_BASE,
    RUNNING,
    DataSourceStatus,
    IngestionJobStatus,
    KnowledgeBaseStatus,
)
from tuneforge.knowledge.stores.configuration import storage_from_record, storage_record
from tuneforge.listing import page
from tuneforge.processes.detached import STOP_GRACE_SECONDS, presumed_alive
from tuneforge.processes.executor import Executor
from tuneforge.processes.executors import executor_for
from tuneforge.processes.local import LOG_NAME
from tuneforge.settings import Settings

INGESTION_MODULE = "tuneforge.knowledge.ingest_process"
EMPTY_STATISTICS = {
    "numberOfDocumentsScanned": 0, "numberOfMetadataDocumentsScanned": 0, "numberOfNewDocumentsIndexed": 0,
    "numberOfModifiedDocumentsIndexed": 0, "numberOfMetadataDocumentsModified": 0, "numberOfDocumentsDeleted": 0,
    "numberOfDocumentsFailed": 0, "numberOfDocumentsSkipped": 0,
}


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_token: str | None


def check_chunk_limit(settings: ChunkingSettings, facts: EmbeddingModelFacts) -> None:
    """Refuse a chunkingConfiguration whose chunks the embedding model would truncate."""
    limit = facts.chunk_token_limit
    base = "vectorIngestionConfiguration.chunkingConfiguration"
    checks = {
        ChunkingStrategy.FIXED_SIZE: (settings.max_tokens, f"{base}.fixedSizeChunkingConfiguration.maxTokens"),
        ChunkingStrategy.SEMANTIC: (settings.max_tokens, f"{base}.semanticChunkingConfiguration.maxTokens"),
        ChunkingStrategy.HIERARCHICAL: (settings.child_max_tokens,
                                        f"{base}.hierarchicalChunkingConfiguration.levelConfigurations[1].maxTokens"),
    }
    if settings.strategy in checks:
        value, field = checks[settings.strategy]
        if value > limit:
            raise InvalidInput(
                f"{field} is {value}, but the knowledge base's embedding model reads at most {limit} tokens per chunk "
                f"({facts.max_seq_length} word pieces with [CLS] and [SEP]); use {limit} or less", field=field,
            )


def open_kb_store(kb: KnowledgeBaseRow, settings: Settings):
    """The knowledge base's vector store (tuneforge.knowledge.stores.open_store), opened."""
    from tuneforge.knowledge.stores import open_store

    return open_store(storage_from_record(kb.storage), kb_id=kb.knowledge_base_id, dimension=kb.dimension,
                      data_dir=settings.home / "knowledge-bases")


class KnowledgeBaseService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], catalog: Catalog, *, reconcile: bool = True,
                 executor: Executor | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.catalog = catalog
        self.executor = executor or executor_for(settings)  # TUNEFORGE_EXECUTOR: local, or a Ray cluster
        if reconcile:
            self.reconcile()

    def kb_arn(self, kb_id: str) -> str:
        return knowledge_base_arn(self.settings, kb_id)

    # ---- knowledge bases ------------------------------------------------------------------------
    def embedding_model(self, identifier: str) -> tuple[str, EmbeddingModelFacts]:
        """The catalog id and facts of an embedding model, by id or foundation-model ARN."""
        model = self.catalog.resolve(model_id_from(identifier))
        if Modality.EMBEDDING not in model.output_modalities:
            raise InvalidInput(
                f"{model.model_id!r} is not an embedding model: use a catalog model whose output modality is EMBEDDING, "
                "e.g. sentence-transformers.all-minilm-l6-v2",
                field="knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelArn",
            )
        path = package_path(model.source.location) if model.source.kind is SourceKind.PACKAGE_DIR else Path(model.source.location)
        return model.model_id, embedding_model_facts(path)

    def create_knowledge_base(self, request: KnowledgeBaseRequest) -> KnowledgeBaseRow:
        if request.client_token:
            with self.sessions() as session:
                existing = session.scalars(select(KnowledgeBaseRow).where(KnowledgeBaseRow.client_token == request.client_token)).first()
            if existing is not None:  # a retried request: the same knowledge base
                return existing
        model_id, facts = self.embedding_model(request.embedding_model)
        if request.dimensions is not None and request.dimensions != facts.dimension:
            raise InvalidInput(f"dimensions {request.dimensions} does not match {model_id}, which embeds into {facts.dimension} dimensions",
                               field="knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelConfiguration")
        with self.sessions() as session:
            if session.scalars(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == request.name)).first() is not None:
                raise Conflict(f"a knowledge base named {request.name!r} already exists: pick another name", field="name")
        kb_id = new_agent_id()
        row = KnowledgeBaseRow(
            knowledge_base_id=kb_id, knowledge_base_arn=self.kb_arn(kb_id), name=request.name, description=request.description,
            role_arn=request.role_arn, client_token=request.client_token,
            knowledge_base_configuration=dict(request.configuration),
            storage_configuration=dict(request.storage_configuration) if request.storage_configuration is not None else None,
            storage=storage_record(request.storage), embedding_model_id=model_id, dimension=facts.dimension,
            embedding_max_tokens=facts.max_seq_length, status=KnowledgeBaseStatus.ACTIVE.value, failure_reasons=[],
        )
        store = self.open_store(row)  # refuses an unusable storageConfiguration before anything is recorded
        store.close()
        with session_scope(self.sessions) as session:
            session.add(row)
        return row

    def get_knowledge_base(self, kb_id: str) -> KnowledgeBaseRow:
        with self.sessions() as session:
            row = session.get(KnowledgeBaseRow, kb_id)
        if row is None:
            raise NotFound(f"no knowledge base {kb_id!r}: see ListKnowledgeBases / `tuneforge kb list`", field="knowledgeBaseId")
        return row

    def list_knowledge_bases(self, *, max_results: int | None = None, next_token: str | None = None) -> Page:
        with self.sessions() as session:
            rows = session.scalars(select(KnowledgeBaseRow).order_by(KnowledgeBaseRow.created_at, KnowledgeBaseRow.knowledge_base_id)).all()
        return Page(*page(rows, max_results=max_results, next_token=next_token))

    def update_knowledge_base(self, kb_id: str, request: KnowledgeBaseRequest) -> KnowledgeBaseRow:
        """Name, description, role and configuration as sent; the embedding model and the store cannot change."""
        row = self.get_knowledge_base(kb_id)
        if self.embedding_model(request.embedding_model)[0] != row.embedding_model_id:
            raise InvalidInput("the embedding model of a knowledge base cannot change: create a new knowledge base",
                               field="knowledgeBaseConfiguration")
        if request.storage_configuration is not None and request.storage != storage_from_record(row.storage):
            raise InvalidInput("the storage configuration of a knowledge base cannot change", field="storageConfiguration")
        with session_scope(self.sessions) as session:
            session.execute(update(KnowledgeBaseRow).where(KnowledgeBaseRow.knowledge_base_id == kb_id).values(
                name=request.name, description=request.description, role_arn=request.role_arn,
                knowledge_base_configuration=dict(request.configuration)))
        return self.get_knowledge_base(kb_id)

    def delete_knowledge_base(self, kb_id: str) -> KnowledgeBaseRow:
        """Stop its ingestion jobs, drop its vectors, remove it with its data sources."""
        row = self.get_knowledge_base(kb_id)
        deleting = KNOWLEDGE_BASE.check(row.status, KnowledgeBaseStatus.DELETING, name=kb_id)
        for job in self._jobs(kb_id=kb_id):
            if job.status in RUNNING and job.pid is not None:
                self.executor.terminate_tree(job.pid, job.pid_started_at, grace_seconds=STOP_GRACE_SECONDS, host=job.host)
        store = self.open_store(row)
        try:
            store.drop()
        finally:
            store.close()
        with session_scope(self.sessions) as session:
            for table in (KbDocumentRow, IngestionJobRow, DataSourceRow):
                session.execute(delete(table).where(table.knowledge_base_id == kb_id))
            session.execute(delete(KnowledgeBaseRow).where(KnowledgeBaseRow.knowledge_base_id == kb_id))
        row.status = deleting  # what DeleteKnowledgeBase reports; the row itself is gone
        return row

    def open_store(self, kb: KnowledgeBaseRow):
        return open_kb_store(kb, self.settings)

    # ---- data sources ---------------------------------------------------------------------------
    def create_data_source(self, kb_id: str, request: DataSourceRequest) -> DataSourceRow:
        kb = self.get_knowledge_base(kb_id)
        if request.client_token:
            with self.sessions() as session:
                existing = session.scalars(select(DataSourceRow).where(DataSourceRow.client_token == request.client_token)).first()
            if existing is not None:
                return existing
        check_chunk_limit(request.chunking, self.embedding_model(kb.embedding_model_id)[1])
        with self.sessions() as session:
            if session.scalars(select(DataSourceRow).where(DataSourceRow.knowledge_base_id == kb_id, DataSourceRow.name == request.name)).first():
                raise Conflict(f"knowledge base {kb_id} already has a data source named {request.name!r}", field="name")
        row = DataSourceRow(
            data_source_id=new_agent_id(), knowledge_base_id=kb_id, name=request.name, description=request.description,
            client_token=request.client_token, data_source_configuration=dict(request.configuration), location_uri=request.location,
            vector_ingestion_configuration=(dict(request.vector_ingestion_configuration)
                                            if request.vector_ingestion_configuration is not None else None),
            data_deletion_policy=request.data_deletion_policy.value, status=DataSourceStatus.AVAILABLE.value, failure_reasons=[],
        )
        with session_scope(self.sessions) as session:
            session.add(row)
        return row

    def get_data_source(self, kb_id: str, ds_id: str) -> DataSourceRow:
        self.get_knowledge_base(kb_id)
        with self.sessions() as session:
            row = session.get(DataSourceRow, ds_id)
        if row is None or row.knowledge_base_id != kb_id:
            raise NotFound(f"knowledge base {kb_id} has no data source {ds_id!r}", field="dataSourceId")
        return row

    def list_data_sources(self, kb_id: str, *, max_results: int | None = None, next_token: str | None = None) -> Page:
        self.get_knowledge_base(kb_id)
        with self.sessions() as session:
            rows = session.scalars(select(DataSourceRow).where(DataSourceRow.knowledge_base_id == kb_id)
                                   .order_by(DataSourceRow.created_at, DataSourceRow.data_source_id)).all()
        return Page(*page(rows, max_results=max_results, next_token=next_token))

    def delete_data_source(self, kb_id: str, ds_id: str) -> DataSourceRow:
        """With dataDeletionPolicy DELETE (the default) its documents' chunks leave the store; RETAIN keeps them."""
        ds = self.get_data_source(kb_id, ds_id)
        deleting = DATA_SOURCE.check(ds.status, DataSourceStatus.DELETING, name=ds_id)
        if any(j.status in RUNNING for j in self._jobs(ds_id=ds_id)):
            raise Conflict(f"data source {ds_id} has an ingestion job running: stop it first", field="dataSourceId")
        if ds.data_deletion_policy == DataDeletionPolicy.DELETE:
            with self.sessions() as session:
                uris = session.scalars(select(KbDocumentRow.uri).where(KbDocumentRow.data_source_id == ds_id)).all()
            store = self.open_store(self.get_knowledge_base(kb_id))
            try:
                for uri in uris:
                    store.delete_document(uri)
            finally:
                store.close()
        with session_scope(self.sessions) as session:
            session.execute(delete(KbDocumentRow).where(KbDocumentRow.data_source_id == ds_id))
            session.execute(delete(IngestionJobRow).where(IngestionJobRow.data_source_id == ds_id))
            session.execute(delete(DataSourceRow).where(DataSourceRow.data_source_id == ds_id))
        ds.status = deleting  # what DeleteDataSource reports; the row itself is gone
        return ds

    # ---- ingestion jobs -------------------------------------------------------------------------
    def start_ingestion_job(self, kb_id: str, ds_id: str, request: IngestionRequest = IngestionRequest(), *,
                            env: dict[str, str] | None = None) -> IngestionJobRow:
        self.get_data_source(kb_id, ds_id)
        if request.client_token:
            with self.sessions() as session:
                existing = session.scalars(select(IngestionJobRow).where(IngestionJobRow.client_token == request.client_token)).first()
            if existing is not None:
                return existing
        self.reconcile()
        if any(j.status in RUNNING for j in self._jobs(ds_id=ds_id)):
            raise Conflict(f"data source {ds_id} already has an ingestion job running: wait for it or stop it", field="dataSourceId")
        job_id = new_agent_id()
        work_dir = self.settings.home / "knowledge-bases" / kb_id / "ingestion" / job_id
        row = IngestionJobRow(
            ingestion_job_id=job_id, knowledge_base_id=kb_id, data_source_id=ds_id, description=request.description,
            client_token=request.client_token, status=IngestionJobStatus.STARTING.value, statistics=dict(EMPTY_STATISTICS), failure_reasons=[],
            progress={"phase": "starting"}, work_dir=str(work_dir), heartbeat_at=utcnow(),
        )
        with session_scope(self.sessions) as session:
            session.add(row)
        self.executor.start(INGESTION_MODULE, job_id, work_dir, env=env, run_id=job_id)
        return row

    def get_ingestion_job(self, kb_id: str, ds_id: str, job_id: str) -> IngestionJobRow:
        self.get_data_source(kb_id, ds_id)
        row = self._job(job_id)
        if row is None or row.data_source_id != ds_id:
            raise NotFound(f"data source {ds_id} has no ingestion job {job_id!r}", field="ingestionJobId")
        if row.status in RUNNING and self._close_if_dead(row):
            row = self._job(job_id)
        return row

    def list_ingestion_jobs(self, kb_id: str, ds_id: str, *, status_in: list[str] | None = None,
                            sort_by: str = "STARTED_AT", descending: bool = True,
                            max_results: int | None = None, next_token: str | None = None) -> Page:
        self.get_data_source(kb_id, ds_id)
        self.reconcile()
        rows = [j for j in self._jobs(ds_id=ds_id) if not status_in or j.status in status_in]
        key = (lambda j: (j.status, j.created_at)) if sort_by == "STATUS" else (lambda j: (j.created_at, j.ingestion_job_id))
        rows.sort(key=key, reverse=descending)
        return Page(*page(rows, max_results=max_results, next_token=next_token))

    def stop_ingestion_job(self, kb_id: str, ds_id: str, job_id: str) -> IngestionJobRow:
        """The process finishes the document it is on and ends STOPPED; what it indexed stays."""
        row = self.get_ingestion_job(kb_id, ds_id, job_id)
        with session_scope(self.sessions) as session:
            INGESTION_JOB.move(session, IngestionJobRow.status, IngestionJobRow.ingestion_job_id == job_id,
                               IngestionJobStatus.STOPPING, name=job_id)
        if row.pid is not None:
            self.executor.signal_stop(row.pid, row.pid_started_at, host=row.host)
        return self._job(job_id)

    def _job(self, job_id: str) -> IngestionJobRow | None:
        with self.sessions() as session:
            return session.get(IngestionJobRow, job_id)

    def _jobs(self, *, kb_id: str | None = None, ds_id: str | None = None) -> list[IngestionJobRow]:
        query = select(IngestionJobRow)
        if kb_id:
            query = query.where(IngestionJobRow.knowledge_base_id == kb_id)
        if ds_id:
            query = query.where(IngestionJobRow.data_source_id == ds_id)
        with self.sessions() as session:
            return list(session.scalars(query).all())

    def reconcile(self) -> list[str]:
        """Fail ingestion jobs whose process is gone (crash, host restart). Rerunning is safe and cheap:
        sync is incremental, so a new job redoes only what the dead one had not finished."""
        with self.sessions() as session:
            open_jobs = session.scalars(select(IngestionJobRow).where(IngestionJobRow.status.in_(RUNNING))).all()
        return [row.ingestion_job_id for row in open_jobs if self._close_if_dead(row)]

    def _close_if_dead(self, row: IngestionJobRow) -> bool:
        if presumed_alive(row, self.executor):
            return False
        target, values = (IngestionJobStatus.STOPPED, {}) if row.status == IngestionJobStatus.STOPPING else (
            IngestionJobStatus.FAILED,
            {"failure_reasons": [*row.failure_reasons, "the ingestion process stopped unexpectedly (see "
                                 f"{Path(row.work_dir) / LOG_NAME}); start a new ingestion job: it resumes where this one stopped"]},
        )
        try:
            with session_scope(self.sessions) as session:
                # only from the status it was read in: a process that ended it meanwhile keeps its outcome
                INGESTION_JOB.move(session, IngestionJobRow.status, (IngestionJobRow.ingestion_job_id == row.ingestion_job_id)
                                   & (IngestionJobRow.status == row.status), target, name=row.ingestion_job_id, **values)
        except Conflict:
            pass
        return True
