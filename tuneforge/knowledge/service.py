"""Knowledge bases, data sources and ingestion jobs: Bedrock's bedrock-agent semantics, without HTTP.

    kbs = KnowledgeBaseService(settings, sessions, catalog)
    kb = kbs.create_knowledge_base(name="docs", role_arn=ROLE, configuration={"type": "VECTOR",
        "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": "sentence-transformers.all-minilm-l6-v2"}})
    ds = kbs.create_data_source(kb.knowledge_base_id, name="laws", configuration={"type": "S3",
        "s3Configuration": {"bucketArn": "arn:aws:s3:::my-bucket", "inclusionPrefixes": ["laws/"]}})
    job = kbs.start_ingestion_job(kb.knowledge_base_id, ds.data_source_id)   # runs in its own process

Where documents come from (dataSourceConfiguration, type S3):
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

import re
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
from tuneforge.documents.chunking_config import ChunkingStrategy, validate_chunking_configuration
from tuneforge.errors import Conflict, InvalidInput, NotFound
from tuneforge.ids import knowledge_base_arn, new_agent_id
from tuneforge.knowledge.embedding import EmbeddingModelFacts, embedding_model_facts
from tuneforge.listing import page
from tuneforge.processes.detached import STOP_GRACE_SECONDS, presumed_alive
from tuneforge.processes.executor import Executor
from tuneforge.processes.local import LOCAL, LOG_NAME
from tuneforge.settings import Settings

INGESTION_MODULE = "tuneforge.knowledge.ingest_process"
RUNNING = ("STARTING", "IN_PROGRESS", "STOPPING")
EMPTY_STATISTICS = {
    "numberOfDocumentsScanned": 0, "numberOfMetadataDocumentsScanned": 0, "numberOfNewDocumentsIndexed": 0,
    "numberOfModifiedDocumentsIndexed": 0, "numberOfMetadataDocumentsModified": 0, "numberOfDocumentsDeleted": 0,
    "numberOfDocumentsFailed": 0, "numberOfDocumentsSkipped": 0,
}
_NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,100}$")  # Bedrock's name pattern for KBs and data sources
_BUCKET_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_token: str | None


def _check_name(name: Any, field: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"{field} {name!r} is invalid: use 1-100 letters and digits, single '_' or '-' between them", field=field)
    return name


def _check_description(description: Any) -> str | None:
    if description is not None and (not isinstance(description, str) or not 1 <= len(description) <= 200):
        raise InvalidInput("description must be 1-200 characters", field="description")
    return description


def data_source_location(configuration: Any) -> str:
    """The folder or prefix a dataSourceConfiguration names, as a tuneforge.storage location."""
    if not isinstance(configuration, dict) or configuration.get("type") != "S3":
        kind = configuration.get("type") if isinstance(configuration, dict) else None
        raise InvalidInput(f"dataSourceConfiguration.type {kind!r} is not supported: use S3 (an S3 bucket or a file:// folder)",
                           field="dataSourceConfiguration.type")
    s3 = configuration.get("s3Configuration")
    if not isinstance(s3, dict) or not isinstance(s3.get("bucketArn"), str):
        raise InvalidInput("dataSourceConfiguration.s3Configuration.bucketArn is required", field="dataSourceConfiguration.s3Configuration.bucketArn")
    prefixes = s3.get("inclusionPrefixes") or []
    if not isinstance(prefixes, list) or len(prefixes) > 1 or not all(isinstance(p, str) and p for p in prefixes):
        raise InvalidInput("inclusionPrefixes takes at most one non-empty prefix",
                           field="dataSourceConfiguration.s3Configuration.inclusionPrefixes")
    prefix = prefixes[0] if prefixes else ""
    arn = s3["bucketArn"]
    if arn.startswith("file://"):
        folder = Path(arn.removeprefix("file://"))
        if not folder.is_absolute() or not folder.is_dir():
            raise InvalidInput(f"{arn!r} is not an existing absolute folder (file:///absolute/path)",
                               field="dataSourceConfiguration.s3Configuration.bucketArn")
        return f"file://{folder}/{prefix.lstrip('/')}"
    match = _BUCKET_ARN.match(arn)
    if not match:
        raise InvalidInput(f"bucketArn {arn!r} is invalid: use arn:aws:s3:::BUCKET (or file:///folder for a local folder)",
                           field="dataSourceConfiguration.s3Configuration.bucketArn")
    return f"s3://{match.group(2)}/{prefix}"


def check_chunk_limit(chunking: dict | None, facts: EmbeddingModelFacts) -> None:
    """Refuse a chunkingConfiguration whose chunks the embedding model would truncate."""
    settings = validate_chunking_configuration(chunking)
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

    return open_store(kb.storage_configuration, kb_id=kb.knowledge_base_id, dimension=kb.dimension,
                      data_dir=settings.home / "knowledge-bases")


class KnowledgeBaseService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], catalog: Catalog, *, reconcile: bool = True,
                 executor: Executor = LOCAL) -> None:
        self.settings = settings
        self.sessions = sessions
        self.catalog = catalog
        self.executor = executor
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

    def create_knowledge_base(
        self, *, name: str, role_arn: str, configuration: dict, description: str | None = None,
        storage_configuration: dict | None = None, client_token: str | None = None,
    ) -> KnowledgeBaseRow:
        if client_token:
            with self.sessions() as session:
                existing = session.scalars(select(KnowledgeBaseRow).where(KnowledgeBaseRow.client_token == client_token)).first()
            if existing is not None:  # a retried request: the same knowledge base
                return existing
        _check_name(name, "name")
        _check_description(description)
        if not isinstance(configuration, dict) or configuration.get("type") != "VECTOR":
            raise InvalidInput("knowledgeBaseConfiguration.type must be VECTOR (KENDRA, SQL and MANAGED are not supported)",
                               field="knowledgeBaseConfiguration.type")
        vector = configuration.get("vectorKnowledgeBaseConfiguration")
        if not isinstance(vector, dict) or not isinstance(vector.get("embeddingModelArn"), str):
            raise InvalidInput("knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelArn is required",
                               field="knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelArn")
        model_id, facts = self.embedding_model(vector["embeddingModelArn"])
        asked = (vector.get("embeddingModelConfiguration") or {}).get("bedrockEmbeddingModelConfiguration", {}).get("dimensions")
        if asked is not None and asked != facts.dimension:
            raise InvalidInput(f"dimensions {asked} does not match {model_id}, which embeds into {facts.dimension} dimensions",
                               field="knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelConfiguration")
        with self.sessions() as session:
            if session.scalars(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == name)).first() is not None:
                raise Conflict(f"a knowledge base named {name!r} already exists: pick another name", field="name")
        kb_id = new_agent_id()
        row = KnowledgeBaseRow(
            knowledge_base_id=kb_id, knowledge_base_arn=self.kb_arn(kb_id), name=name, description=description,
            role_arn=role_arn, client_token=client_token, knowledge_base_configuration=configuration,
            storage_configuration=storage_configuration, embedding_model_id=model_id, dimension=facts.dimension,
            embedding_max_tokens=facts.max_seq_length, status="ACTIVE", failure_reasons=[],
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

    def update_knowledge_base(self, kb_id: str, *, name: str, role_arn: str, configuration: dict,
                              description: str | None = None, storage_configuration: dict | None = None) -> KnowledgeBaseRow:
        row = self.get_knowledge_base(kb_id)
        _check_name(name, "name")
        _check_description(description)
        vector = (configuration or {}).get("vectorKnowledgeBaseConfiguration") or {}
        if configuration.get("type") != "VECTOR" or self.embedding_model(vector.get("embeddingModelArn", ""))[0] != row.embedding_model_id:
            raise InvalidInput("the embedding model of a knowledge base cannot change: create a new knowledge base",
                               field="knowledgeBaseConfiguration")
        if storage_configuration is not None and storage_configuration != row.storage_configuration:
            raise InvalidInput("the storage configuration of a knowledge base cannot change", field="storageConfiguration")
        with session_scope(self.sessions) as session:
            session.execute(update(KnowledgeBaseRow).where(KnowledgeBaseRow.knowledge_base_id == kb_id).values(
                name=name, description=description, role_arn=role_arn, knowledge_base_configuration=configuration))
        return self.get_knowledge_base(kb_id)

    def delete_knowledge_base(self, kb_id: str) -> KnowledgeBaseRow:
        """Stop its ingestion jobs, drop its vectors, remove it with its data sources."""
        row = self.get_knowledge_base(kb_id)
        for job in self._jobs(kb_id=kb_id):
            if job.status in RUNNING and job.pid is not None:
                self.executor.terminate_tree(job.pid, job.pid_started_at, grace_seconds=STOP_GRACE_SECONDS)
        store = self.open_store(row)
        try:
            store.drop()
        finally:
            store.close()
        with session_scope(self.sessions) as session:
            for table in (KbDocumentRow, IngestionJobRow, DataSourceRow):
                session.execute(delete(table).where(table.knowledge_base_id == kb_id))
            session.execute(delete(KnowledgeBaseRow).where(KnowledgeBaseRow.knowledge_base_id == kb_id))
        row.status = "DELETING"
        return row

    def open_store(self, kb: KnowledgeBaseRow):
        return open_kb_store(kb, self.settings)

    # ---- data sources ---------------------------------------------------------------------------
    def create_data_source(
        self, kb_id: str, *, name: str, configuration: dict, description: str | None = None,
        vector_ingestion_configuration: dict | None = None, data_deletion_policy: str | None = None,
        client_token: str | None = None,
    ) -> DataSourceRow:
        kb = self.get_knowledge_base(kb_id)
        if client_token:
            with self.sessions() as session:
                existing = session.scalars(select(DataSourceRow).where(DataSourceRow.client_token == client_token)).first()
            if existing is not None:
                return existing
        _check_name(name, "name")
        _check_description(description)
        location = data_source_location(configuration)
        policy = data_deletion_policy or "DELETE"
        if policy not in ("RETAIN", "DELETE"):
            raise InvalidInput(f"dataDeletionPolicy {policy!r} is invalid: use RETAIN or DELETE", field="dataDeletionPolicy")
        chunking = (vector_ingestion_configuration or {}).get("chunkingConfiguration")
        check_chunk_limit(chunking, self.embedding_model(kb.embedding_model_id)[1])
        with self.sessions() as session:
            if session.scalars(select(DataSourceRow).where(DataSourceRow.knowledge_base_id == kb_id, DataSourceRow.name == name)).first():
                raise Conflict(f"knowledge base {kb_id} already has a data source named {name!r}", field="name")
        row = DataSourceRow(
            data_source_id=new_agent_id(), knowledge_base_id=kb_id, name=name, description=description, client_token=client_token,
            data_source_configuration=configuration, location_uri=location,
            vector_ingestion_configuration=vector_ingestion_configuration, data_deletion_policy=policy,
            status="AVAILABLE", failure_reasons=[],
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
        if any(j.status in RUNNING for j in self._jobs(ds_id=ds_id)):
            raise Conflict(f"data source {ds_id} has an ingestion job running: stop it first", field="dataSourceId")
        if ds.data_deletion_policy == "DELETE":
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
        ds.status = "DELETING"
        return ds

    # ---- ingestion jobs -------------------------------------------------------------------------
    def start_ingestion_job(self, kb_id: str, ds_id: str, *, description: str | None = None,
                            client_token: str | None = None, env: dict[str, str] | None = None) -> IngestionJobRow:
        self.get_data_source(kb_id, ds_id)
        if client_token:
            with self.sessions() as session:
                existing = session.scalars(select(IngestionJobRow).where(IngestionJobRow.client_token == client_token)).first()
            if existing is not None:
                return existing
        _check_description(description)
        self.reconcile()
        if any(j.status in RUNNING for j in self._jobs(ds_id=ds_id)):
            raise Conflict(f"data source {ds_id} already has an ingestion job running: wait for it or stop it", field="dataSourceId")
        job_id = new_agent_id()
        work_dir = self.settings.home / "knowledge-bases" / kb_id / "ingestion" / job_id
        row = IngestionJobRow(
            ingestion_job_id=job_id, knowledge_base_id=kb_id, data_source_id=ds_id, description=description,
            client_token=client_token, status="STARTING", statistics=dict(EMPTY_STATISTICS), failure_reasons=[],
            progress={"phase": "starting"}, work_dir=str(work_dir), heartbeat_at=utcnow(),
        )
        with session_scope(self.sessions) as session:
            session.add(row)
        self.executor.start(INGESTION_MODULE, job_id, work_dir, env=env)
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
        if row.status not in ("STARTING", "IN_PROGRESS"):
            raise Conflict(f"ingestion job {job_id} is {row.status}: only a running job can be stopped", field="ingestionJobId")
        with session_scope(self.sessions) as session:
            session.execute(update(IngestionJobRow).where(IngestionJobRow.ingestion_job_id == job_id).values(status="STOPPING"))
        if row.pid is not None:
            self.executor.signal_stop(row.pid, row.pid_started_at)
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
        values: dict[str, Any] = {"status": "STOPPED"} if row.status == "STOPPING" else {
            "status": "FAILED",
            "failure_reasons": [*row.failure_reasons, "the ingestion process stopped unexpectedly (see "
                                f"{Path(row.work_dir) / LOG_NAME}); start a new ingestion job: it resumes where this one stopped"],
        }
        with session_scope(self.sessions) as session:
            session.execute(update(IngestionJobRow).where(IngestionJobRow.ingestion_job_id == row.ingestion_job_id,
                                                          IngestionJobRow.status.in_(RUNNING)).values(**values))
        return True
