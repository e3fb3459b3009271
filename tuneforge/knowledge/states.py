"""Statuses of knowledge bases, data sources and ingestion jobs (botocore's bedrock-agent enums), and the lifecycle
of each: every status write goes through `KNOWLEDGE_BASE`, `DATA_SOURCE` or `INGESTION_JOB` (tuneforge.lifecycle).

    knowledge base   ACTIVE ──> DELETING          (created ACTIVE: its store is opened before the row is written)
    data source      AVAILABLE ──> DELETING
    ingestion job    STARTING ──> IN_PROGRESS ──> COMPLETE
                         │             ├────────> FAILED
                         └─────────────┴─> STOPPING ──> STOPPED

CREATING, UPDATING, FAILED and DELETE_UNSUCCESSFUL are Bedrock's too; creation and updates here are synchronous,
so they are listed for the wire (ListIngestionJobs filters, boto3 waiters) and no write produces them yet.
"""

from __future__ import annotations

from enum import StrEnum

from tuneforge.lifecycle import Lifecycle


class KnowledgeBaseStatus(StrEnum):
    CREATING = "CREATING"
    ACTIVE = "ACTIVE"
    DELETING = "DELETING"
    UPDATING = "UPDATING"
    FAILED = "FAILED"
    DELETE_UNSUCCESSFUL = "DELETE_UNSUCCESSFUL"


class DataSourceStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    DELETING = "DELETING"
    DELETE_UNSUCCESSFUL = "DELETE_UNSUCCESSFUL"


class IngestionJobStatus(StrEnum):
    STARTING = "STARTING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


KNOWLEDGE_BASE = Lifecycle("knowledge base", {
    KnowledgeBaseStatus.CREATING: {KnowledgeBaseStatus.ACTIVE, KnowledgeBaseStatus.FAILED},
    KnowledgeBaseStatus.ACTIVE: {KnowledgeBaseStatus.UPDATING, KnowledgeBaseStatus.DELETING},
    KnowledgeBaseStatus.UPDATING: {KnowledgeBaseStatus.ACTIVE, KnowledgeBaseStatus.FAILED},
    KnowledgeBaseStatus.FAILED: {KnowledgeBaseStatus.DELETING},
    KnowledgeBaseStatus.DELETING: {KnowledgeBaseStatus.DELETE_UNSUCCESSFUL},
    KnowledgeBaseStatus.DELETE_UNSUCCESSFUL: {KnowledgeBaseStatus.DELETING},
}, field="knowledgeBaseId")

DATA_SOURCE = Lifecycle("data source", {
    DataSourceStatus.AVAILABLE: {DataSourceStatus.DELETING},
    DataSourceStatus.DELETING: {DataSourceStatus.DELETE_UNSUCCESSFUL},
    DataSourceStatus.DELETE_UNSUCCESSFUL: {DataSourceStatus.DELETING},
}, field="dataSourceId")

INGESTION_JOB = Lifecycle("ingestion job", {
    # STARTING -> FAILED/STOPPED: the process died before it recorded itself, or stopped before it began
    IngestionJobStatus.STARTING: {IngestionJobStatus.IN_PROGRESS, IngestionJobStatus.STOPPING, IngestionJobStatus.FAILED,
                                  IngestionJobStatus.STOPPED},
    IngestionJobStatus.IN_PROGRESS: {IngestionJobStatus.COMPLETE, IngestionJobStatus.FAILED, IngestionJobStatus.STOPPING,
                                     IngestionJobStatus.STOPPED},
    # a stop lands between two documents: a job on its last one still completes
    IngestionJobStatus.STOPPING: {IngestionJobStatus.STOPPED, IngestionJobStatus.COMPLETE, IngestionJobStatus.FAILED},
}, field="ingestionJobId")

RUNNING = (IngestionJobStatus.STARTING.value, IngestionJobStatus.IN_PROGRESS.value, IngestionJobStatus.STOPPING.value)
FINISHED = (IngestionJobStatus.COMPLETE.value, IngestionJobStatus.FAILED.value, IngestionJobStatus.STOPPED.value)
