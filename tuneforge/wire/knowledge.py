"""Knowledge bases, data sources and ingestion jobs in Bedrock's bedrock-agent response shapes.

Used by the HTTP API and by the CLI's `--json`, so scripts see one format everywhere.
"""

from __future__ import annotations

from tuneforge.db.tables import DataSourceRow, IngestionJobRow, KnowledgeBaseRow
from tuneforge.wire.timestamps import timestamp


def _drop_none(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}


def knowledge_base(row: KnowledgeBaseRow) -> dict:
    return _drop_none({
        "knowledgeBaseId": row.knowledge_base_id, "name": row.name, "knowledgeBaseArn": row.knowledge_base_arn,
        "description": row.description, "roleArn": row.role_arn,
        "knowledgeBaseConfiguration": row.knowledge_base_configuration, "storageConfiguration": row.storage_configuration,
        "status": row.status, "createdAt": timestamp(row.created_at), "updatedAt": timestamp(row.updated_at),
        "failureReasons": row.failure_reasons or None,
    })


def knowledge_base_summary(row: KnowledgeBaseRow) -> dict:
    return _drop_none({"knowledgeBaseId": row.knowledge_base_id, "name": row.name, "description": row.description,
                       "status": row.status, "updatedAt": timestamp(row.updated_at)})


def data_source(row: DataSourceRow) -> dict:
    return _drop_none({
        "knowledgeBaseId": row.knowledge_base_id, "dataSourceId": row.data_source_id, "name": row.name,
        "status": row.status, "description": row.description, "dataSourceConfiguration": row.data_source_configuration,
        "vectorIngestionConfiguration": row.vector_ingestion_configuration, "dataDeletionPolicy": row.data_deletion_policy,
        "createdAt": timestamp(row.created_at), "updatedAt": timestamp(row.updated_at), "failureReasons": row.failure_reasons or None,
    })


def data_source_summary(row: DataSourceRow) -> dict:
    return _drop_none({"knowledgeBaseId": row.knowledge_base_id, "dataSourceId": row.data_source_id, "name": row.name,
                       "status": row.status, "description": row.description, "updatedAt": timestamp(row.updated_at)})


def ingestion_job(row: IngestionJobRow) -> dict:
    return _drop_none({
        "knowledgeBaseId": row.knowledge_base_id, "dataSourceId": row.data_source_id, "ingestionJobId": row.ingestion_job_id,
        "description": row.description, "status": row.status, "statistics": row.statistics,
        "failureReasons": row.failure_reasons or None, "startedAt": timestamp(row.created_at), "updatedAt": timestamp(row.updated_at),
    })


def ingestion_job_summary(row: IngestionJobRow) -> dict:
    return _drop_none({
        "knowledgeBaseId": row.knowledge_base_id, "dataSourceId": row.data_source_id, "ingestionJobId": row.ingestion_job_id,
        "description": row.description, "status": row.status, "startedAt": timestamp(row.created_at),
        "updatedAt": timestamp(row.updated_at), "statistics": row.statistics,
    })
