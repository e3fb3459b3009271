"""Knowledge bases, data sources and ingestion jobs in Bedrock's bedrock-agent shapes: the typed requests built
from its request shapes, and its response shapes built from rows.

Used by the HTTP API and by the CLI (which builds the same request shapes, and prints these with `--json`), so a
request is checked the same way from both, and scripts see one format everywhere.

    request = knowledge_base_request(params)    # CreateKnowledgeBase's input members -> KnowledgeBaseRequest
    {"knowledgeBase": knowledge_base(kbs.create_knowledge_base(request))}
    configuration = retrieval_configuration(params.get("retrievalConfiguration"))   # Retrieve's, typed
    request = rerank_request(params)            # Rerank's input members -> RerankRequest
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneforge.db.tables import DataSourceRow, IngestionJobRow, KnowledgeBaseRow
from tuneforge.documents.chunking_config import validate_chunking_configuration
from tuneforge.errors import InvalidInput
from tuneforge.knowledge.filters import parse_filter
from tuneforge.knowledge.generate import Citation, reference
from tuneforge.knowledge.rerank import Ranked
from tuneforge.knowledge.requests import (
    DataDeletionPolicy,
    DataSourceRequest,
    IngestionRequest,
    KnowledgeBaseRequest,
    MetadataSelection,
    RerankingSettings,
    RerankRequest,
    RerankSource,
    RetrievalConfiguration,
    SearchType,
)
from tuneforge.knowledge.stores.configuration import parse_storage_configuration
from tuneforge.wire.timestamps import timestamp

_BUCKET_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")
_VECTOR = "knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration"
RETRIEVAL = "retrievalConfiguration"  # Retrieve's name for it; RetrieveAndGenerate's is RAG_RETRIEVAL
RAG_RETRIEVAL = "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.retrievalConfiguration"
MAX_RETRIEVAL_RESULTS = 100  # numberOfResults and numberOfRerankedResults: botocore's max, which it does not check
MAX_RERANK_SOURCES = 1000  # Rerank's sources and numberOfResults
MAX_RERANK_TEXT = 32_000  # a Rerank query's or text document's characters
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


def retrieval_configuration(configuration: Any, *, field: str = RETRIEVAL) -> RetrievalConfiguration:
    """A KnowledgeBaseRetrievalConfiguration (`field` is its wire path), checked: numberOfResults 1-100,
    overrideSearchType, filter, rerankingConfiguration (numberOfRerankedResults at most numberOfResults: the
    reranker reorders the numberOfResults candidates and keeps that many)."""
    if configuration is None:
        return RetrievalConfiguration()
    base = f"{field}.vectorSearchConfiguration"
    vector = _object(configuration, field).get("vectorSearchConfiguration")
    if vector is None:
        return RetrievalConfiguration()
    vector = _object(vector, base)
    if vector.get("implicitFilterConfiguration") is not None:
        raise InvalidInput("implicitFilterConfiguration is not supported: give the filter itself", field=f"{base}.implicitFilterConfiguration")
    k = _count(vector.get("numberOfResults", 5), f"{base}.numberOfResults", MAX_RETRIEVAL_RESULTS)
    search = vector.get("overrideSearchType") or SearchType.SEMANTIC.value
    if search not in {t.value for t in SearchType}:
        raise InvalidInput(f"{base}.overrideSearchType must be SEMANTIC or HYBRID, got {search!r}", field=f"{base}.overrideSearchType")
    parsed = parse_filter(vector["filter"], field=f"{base}.filter") if vector.get("filter") is not None else None
    reranking = vector.get("rerankingConfiguration")
    settings = _reranking(reranking, f"{base}.rerankingConfiguration", k) if reranking is not None else None
    return RetrievalConfiguration(k, SearchType(search), parsed, settings)


def _reranking(configuration: Any, field: str, candidates: int) -> RerankingSettings:
    configuration = _object(configuration, field)
    if configuration.get("type") != "BEDROCK_RERANKING_MODEL":
        raise InvalidInput(f"{field}.type must be BEDROCK_RERANKING_MODEL, got {configuration.get('type')!r}", field=f"{field}.type")
    bedrock = _object(configuration.get("bedrockRerankingConfiguration"), f"{field}.bedrockRerankingConfiguration")
    base = f"{field}.bedrockRerankingConfiguration"
    model = _model_configuration(bedrock.get("modelConfiguration"), f"{base}.modelConfiguration")
    kept = bedrock.get("numberOfRerankedResults")
    if kept is not None:
        _count(kept, f"{base}.numberOfRerankedResults", MAX_RETRIEVAL_RESULTS)
        if kept > candidates:
            raise InvalidInput(
                f"{base}.numberOfRerankedResults ({kept}) exceeds numberOfResults ({candidates}), the candidates the reranker "
                f"reorders: ask for at least {kept} results", field=f"{base}.numberOfRerankedResults",
            )
    metadata = bedrock.get("metadataConfiguration")
    if metadata is None:
        return RerankingSettings(model, f"{base}.modelConfiguration.modelArn", kept)
    where = f"{base}.metadataConfiguration"
    metadata = _object(metadata, where)
    mode = metadata.get("selectionMode")
    if mode not in {m.value for m in MetadataSelection}:
        raise InvalidInput(f"{where}.selectionMode must be SELECTIVE or ALL, got {mode!r}", field=f"{where}.selectionMode")
    selective = metadata.get("selectiveModeConfiguration")
    if mode == MetadataSelection.ALL.value:
        if selective is not None:
            raise InvalidInput(f"{where}.selectiveModeConfiguration goes with selectionMode SELECTIVE, not ALL",
                               field=f"{where}.selectiveModeConfiguration")
        return RerankingSettings(model, f"{base}.modelConfiguration.modelArn", kept, MetadataSelection.ALL)
    selective = _object(selective, f"{where}.selectiveModeConfiguration")
    given = [name for name in ("fieldsToInclude", "fieldsToExclude") if selective.get(name) is not None]
    if len(given) != 1:
        raise InvalidInput(f"{where}.selectiveModeConfiguration takes exactly one of fieldsToInclude and fieldsToExclude",
                           field=f"{where}.selectiveModeConfiguration")
    names = _field_names(selective[given[0]], f"{where}.selectiveModeConfiguration.{given[0]}")
    if given[0] == "fieldsToInclude":
        return RerankingSettings(model, f"{base}.modelConfiguration.modelArn", kept, MetadataSelection.SELECTIVE, fields_to_include=names)
    return RerankingSettings(model, f"{base}.modelConfiguration.modelArn", kept, MetadataSelection.SELECTIVE, fields_to_exclude=names)


def _model_configuration(configuration: Any, field: str) -> str:
    """modelArn of a reranking modelConfiguration; cross-encoders take no additionalModelRequestFields."""
    configuration = _object(configuration, field)
    model = configuration.get("modelArn")
    if not isinstance(model, str) or not model:
        raise InvalidInput(f"{field}.modelArn is required: the reranker's model id or foundation-model ARN", field=f"{field}.modelArn")
    if configuration.get("additionalModelRequestFields"):
        raise InvalidInput(f"{field}.additionalModelRequestFields is not supported: a cross-encoder reranker takes no options",
                           field=f"{field}.additionalModelRequestFields")
    return model


def _field_names(fields: Any, where: str) -> tuple[str, ...]:
    if not isinstance(fields, list) or not 1 <= len(fields) <= 100:
        raise InvalidInput(f"{where} must list 1-100 fields", field=where)
    names = []
    for i, entry in enumerate(fields):
        name = entry.get("fieldName") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 2000:
            raise InvalidInput(f"{where}[{i}].fieldName must be 1-2,000 characters", field=f"{where}[{i}].fieldName")
        names.append(name)
    return tuple(names)


def rerank_request(params: Mapping[str, Any]) -> RerankRequest:
    """Rerank's input members, checked. numberOfResults above the number of sources is a ValidationException, as
    Bedrock answers it; a JSON document is read by the reranker as its JSON text."""
    if params.get("nextToken") is not None:
        # every result fits one response (at most 1,000), so this server never issues a token
        raise InvalidInput("nextToken is not one this server issued: Rerank answers every result at once", field="nextToken")
    queries = params.get("queries")
    if not isinstance(queries, list) or len(queries) != 1:
        raise InvalidInput("queries takes exactly one query", field="queries")
    query = _object(queries[0], "queries[0]")
    if query.get("type") != "TEXT":
        raise InvalidInput(f"queries[0].type must be TEXT, got {query.get('type')!r}", field="queries[0].type")
    text = _text((query.get("textQuery") or {}).get("text") if isinstance(query.get("textQuery"), Mapping) else None,
                 "queries[0].textQuery.text")
    sources = params.get("sources")
    if not isinstance(sources, list) or not 1 <= len(sources) <= MAX_RERANK_SOURCES:
        raise InvalidInput(f"sources must list 1-{MAX_RERANK_SOURCES:,} sources", field="sources")
    parsed = tuple(_rerank_source(source, f"sources[{i}]") for i, source in enumerate(sources))
    configuration = _object(params.get("rerankingConfiguration"), "rerankingConfiguration")
    if configuration.get("type") != "BEDROCK_RERANKING_MODEL":
        raise InvalidInput(f"rerankingConfiguration.type must be BEDROCK_RERANKING_MODEL, got {configuration.get('type')!r}",
                           field="rerankingConfiguration.type")
    base = "rerankingConfiguration.bedrockRerankingConfiguration"
    bedrock = _object(configuration.get("bedrockRerankingConfiguration"), base)
    model = _model_configuration(bedrock.get("modelConfiguration"), f"{base}.modelConfiguration")
    count = bedrock.get("numberOfResults")
    if count is not None:
        _count(count, f"{base}.numberOfResults", MAX_RERANK_SOURCES)
        if count > len(parsed):
            raise InvalidInput(f"Cannot provide numberOfResults value that exceeds the number of sources ({count} > {len(parsed)})",
                               field=f"{base}.numberOfResults")
    return RerankRequest(text, parsed, model, count)


def _rerank_source(source: Any, where: str) -> RerankSource:
    source = _object(source, where)
    if source.get("type") != "INLINE":
        raise InvalidInput(f"{where}.type must be INLINE, got {source.get('type')!r}", field=f"{where}.type")
    document = _object(source.get("inlineDocumentSource"), f"{where}.inlineDocumentSource")
    kind = document.get("type")
    if kind == "TEXT":
        body = document.get("textDocument")
        text = _text(body.get("text") if isinstance(body, Mapping) else None, f"{where}.inlineDocumentSource.textDocument.text")
        return RerankSource(text, document)
    if kind == "JSON":
        if document.get("jsonDocument") is None:
            raise InvalidInput(f"{where}.inlineDocumentSource.jsonDocument is required for type JSON",
                               field=f"{where}.inlineDocumentSource.jsonDocument")
        return RerankSource(json.dumps(document["jsonDocument"], ensure_ascii=False), document)
    raise InvalidInput(f"{where}.inlineDocumentSource.type must be TEXT or JSON, got {kind!r}", field=f"{where}.inlineDocumentSource.type")


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be an object", field=field)
    return value


def _count(value: Any, field: str, most: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise InvalidInput(f"{field} must be an integer from 1 to {most}, got {value!r}", field=field)
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_RERANK_TEXT:
        raise InvalidInput(f"{field} must be 1-{MAX_RERANK_TEXT:,} characters", field=field)
    return value


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
def rerank_results(request: RerankRequest, ranked: list[Ranked]) -> list[dict]:
    """Rerank's results: best first, each with its source's index, score and document as sent."""
    return [{"index": r.index, "relevanceScore": r.score, "document": dict(request.sources[r.index].document)} for r in ranked]


def citation(c: Citation) -> dict:
    """A Citation of RetrieveAndGenerate (and the members of RetrieveAndGenerateStream's citation event)."""
    return {"generatedResponsePart": {"textResponsePart": {"text": c.text, "span": {"start": c.start, "end": c.end}}},
            "retrievedReferences": [reference(hit) for hit in c.references]}



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
