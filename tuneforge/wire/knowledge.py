"""Knowledge bases, data sources and ingestion jobs in Bedrock's bedrock-agent shapes: the typed requests built
from its request shapes, and its response shapes built from rows.

Used by the HTTP API and by the CLI (which builds the same request shapes, and prints these with `--json`), so a
request is checked the same way from both, and scripts see one format everywhere.

    request = knowledge_base_request(params)    # CreateKnowledgeBase's input members -> KnowledgeBaseRequest
    {"knowledgeBase": knowledge_base(kbs.create_knowledge_base(request))}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneforge.db.tables import DataSourceRow, IngestionJobRow, KnowledgeBaseRow
from tuneforge.documents.chunking_config import validate_chunking_configuration
from tuneforge.errors import InvalidInput
from tuneforge.knowledge.requests import DataDeletionPolicy, DataSourceRequest, IngestionRequest, KnowledgeBaseRequest
from tuneforge.knowledge.stores.configuration import parse_storage_configuration
from tuneforge.wire.timestamps import timestamp

_BUCKET_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")
_VECTOR = "knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration"
_S3 = "dataSourceConfiguration.s3Configuration"


# ---- requests ------------------------------------------------------------------------------------
def knowledge_base_request(params: Mapping[str, Any]) -> KnowledgeBaseRequest:
    """CreateKnowledgeBase's (or UpdateKnowledgeBase's) input members, checked."""
    configuration = params.get("knowledgeBaseConfiguration")
    if not isinstance(configuration, Mapping) or configuration.get("type") != "VECTOR":
        raise InvalidInput("knowledgeBaseConfiguration.type must be VECTOR (KENDRA, SQL and MANAGED are not supported)",
                           field="knowledgeBaseConfiguration.type")
    vector = configuration.get("vectorKnowledgeBaseConfiguration")
    if not isinstance(vector, Mapping) or not isinstance(vector.get("embeddingModelArn"), str):
        raise InvalidInput(f"{_VECTOR}.embeddingModelArn is required", field=f"{_VECTOR}.embeddingModelArn")
    model_configuration = vector.get("embeddingModelConfiguration") or {}
    dimensions = (model_configuration.get("bedrockEmbeddingModelConfiguration") or {}).get("dimensions")
    storage_configuration = params.get("storageConfiguration")
    return KnowledgeBaseRequest(
        name=params.get("name"), role_arn=params.get("roleArn"), embedding_model=vector["embeddingModelArn"],
        dimensions=dimensions, storage=parse_storage_configuration(storage_configuration),
        description=params.get("description"), client_token=params.get("clientToken"),
        configuration=configuration, storage_configuration=storage_configuration,
    )


def data_source_request(params: Mapping[str, Any]) -> DataSourceRequest:
    """CreateDataSource's input members (less knowledgeBaseId), checked."""
    configuration = params.get("dataSourceConfiguration")
    location = data_source_location(configuration)
    policy = params.get("dataDeletionPolicy") or DataDeletionPolicy.DELETE.value
    if policy not in {p.value for p in DataDeletionPolicy}:
        raise InvalidInput(f"dataDeletionPolicy {policy!r} is invalid: use RETAIN or DELETE", field="dataDeletionPolicy")
    ingestion = params.get("vectorIngestionConfiguration")
    chunking = validate_chunking_configuration((ingestion or {}).get("chunkingConfiguration"))
    return DataSourceRequest(
        name=params.get("name"), location=location, chunking=chunking, data_deletion_policy=DataDeletionPolicy(policy),
        description=params.get("description"), client_token=params.get("clientToken"),
        configuration=configuration, vector_ingestion_configuration=ingestion,
    )


def ingestion_request(params: Mapping[str, Any]) -> IngestionRequest:
    """StartIngestionJob's input members (less the two ids), checked."""
    return IngestionRequest(description=params.get("description"), client_token=params.get("clientToken"))


def data_source_location(configuration: Any) -> str:
    """The folder or prefix a dataSourceConfiguration names, as a tuneforge.storage location.

    type S3 only: `bucketArn` arn:aws:s3:::BUCKET with at most one `inclusionPrefixes` entry (s3://BUCKET/PREFIX),
    or a local folder (a tuneforge extension) as `bucketArn` file:///absolute/folder."""
    if not isinstance(configuration, Mapping) or configuration.get("type") != "S3":
        kind = configuration.get("type") if isinstance(configuration, Mapping) else None
        raise InvalidInput(f"dataSourceConfiguration.type {kind!r} is not supported: use S3 (an S3 bucket or a file:// folder)",
                           field="dataSourceConfiguration.type")
    s3 = configuration.get("s3Configuration")
    if not isinstance(s3, Mapping) or not isinstance(s3.get("bucketArn"), str):
        raise InvalidInput(f"{_S3}.bucketArn is required", field=f"{_S3}.bucketArn")
    prefixes = s3.get("inclusionPrefixes") or []
    if not isinstance(prefixes, list) or len(prefixes) > 1 or not all(isinstance(p, str) and p for p in prefixes):
        raise InvalidInput("inclusionPrefixes takes at most one non-empty prefix", field=f"{_S3}.inclusionPrefixes")
    prefix = prefixes[0] if prefixes else ""
    arn = s3["bucketArn"]
    if arn.startswith("file://"):
        folder = Path(arn.removeprefix("file://"))
        if not folder.is_absolute() or not folder.is_dir():
            raise InvalidInput(f"{arn!r} is not an existing absolute folder (file:///absolute/path)", field=f"{_S3}.bucketArn")
        return f"file://{folder}/{prefix.lstrip('/')}"
    match = _BUCKET_ARN.match(arn)
    if not match:
        raise InvalidInput(f"bucketArn {arn!r} is invalid: use arn:aws:s3:::BUCKET (or file:///folder for a local folder)",
                           field=f"{_S3}.bucketArn")
    return f"s3://{match.group(2)}/{prefix}"


# ---- responses -----------------------------------------------------------------------------------


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
