"""The `bedrock-agent` knowledge-base operations: knowledge bases, data sources, ingestion jobs.

Handlers build the typed request (tuneforge.wire.knowledge), call one KnowledgeBaseService function and shape the
reply like Bedrock's (tuneforge.wire.knowledge).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tuneforge.api.services import services
from tuneforge.errors import InvalidInput
from tuneforge.knowledge.states import IngestionJobStatus
from tuneforge.wire import knowledge as views

_JOB_STATUSES = tuple(IngestionJobStatus)


def create_knowledge_base(request: Request, params: dict[str, Any]) -> dict:
    kb = services(request).knowledge.create_knowledge_base(views.knowledge_base_request(params))
    return {"knowledgeBase": views.knowledge_base(kb)}


def get_knowledge_base(request: Request, params: dict[str, Any]) -> dict:
    return {"knowledgeBase": views.knowledge_base(services(request).knowledge.get_knowledge_base(params["knowledgeBaseId"]))}


def list_knowledge_bases(request: Request, params: dict[str, Any]) -> dict:
    found = services(request).knowledge.list_knowledge_bases(max_results=params.get("maxResults"), next_token=params.get("nextToken"))
    return {"knowledgeBaseSummaries": [views.knowledge_base_summary(kb) for kb in found.items], **_token(found.next_token)}


def update_knowledge_base(request: Request, params: dict[str, Any]) -> dict:
    kb = services(request).knowledge.update_knowledge_base(params["knowledgeBaseId"], views.knowledge_base_request(params))
    return {"knowledgeBase": views.knowledge_base(kb)}


def delete_knowledge_base(request: Request, params: dict[str, Any]) -> dict:
    s = services(request)
    kb = s.knowledge.delete_knowledge_base(params["knowledgeBaseId"])
    s.retriever.forget(kb.knowledge_base_id)
    return {"knowledgeBaseId": kb.knowledge_base_id, "status": kb.status}


def create_data_source(request: Request, params: dict[str, Any]) -> dict:
    ds = services(request).knowledge.create_data_source(params["knowledgeBaseId"], views.data_source_request(params))
    return {"dataSource": views.data_source(ds)}


def get_data_source(request: Request, params: dict[str, Any]) -> dict:
    return {"dataSource": views.data_source(services(request).knowledge.get_data_source(params["knowledgeBaseId"], params["dataSourceId"]))}


def list_data_sources(request: Request, params: dict[str, Any]) -> dict:
    found = services(request).knowledge.list_data_sources(
        params["knowledgeBaseId"], max_results=params.get("maxResults"), next_token=params.get("nextToken"))
    return {"dataSourceSummaries": [views.data_source_summary(ds) for ds in found.items], **_token(found.next_token)}


def delete_data_source(request: Request, params: dict[str, Any]) -> dict:
    ds = services(request).knowledge.delete_data_source(params["knowledgeBaseId"], params["dataSourceId"])
    return {"knowledgeBaseId": ds.knowledge_base_id, "dataSourceId": ds.data_source_id, "status": ds.status}


def start_ingestion_job(request: Request, params: dict[str, Any]) -> dict:
    job = services(request).knowledge.start_ingestion_job(params["knowledgeBaseId"], params["dataSourceId"],
                                                          views.ingestion_request(params))
    return {"ingestionJob": views.ingestion_job(job)}


def get_ingestion_job(request: Request, params: dict[str, Any]) -> dict:
    job = services(request).knowledge.get_ingestion_job(params["knowledgeBaseId"], params["dataSourceId"], params["ingestionJobId"])
    return {"ingestionJob": views.ingestion_job(job)}


def list_ingestion_jobs(request: Request, params: dict[str, Any]) -> dict:
    statuses = None
    for i, f in enumerate(params.get("filters") or []):
        if f.get("attribute") != "STATUS" or f.get("operator") != "EQ" or any(v not in _JOB_STATUSES for v in f.get("values", [])):
            raise InvalidInput(f"filters[{i}] must be {{attribute: STATUS, operator: EQ, values: [{', '.join(_JOB_STATUSES)}]}}",
                               field=f"filters[{i}]")
        statuses = f["values"]
    sort = params.get("sortBy") or {"attribute": "STARTED_AT", "order": "DESCENDING"}
    if sort.get("attribute") not in ("STATUS", "STARTED_AT") or sort.get("order") not in ("ASCENDING", "DESCENDING"):
        raise InvalidInput("sortBy must be {attribute: STATUS|STARTED_AT, order: ASCENDING|DESCENDING}", field="sortBy")
    found = services(request).knowledge.list_ingestion_jobs(
        params["knowledgeBaseId"], params["dataSourceId"], status_in=statuses, sort_by=sort["attribute"],
        descending=sort["order"] == "DESCENDING", max_results=params.get("maxResults"), next_token=params.get("nextToken"))
    return {"ingestionJobSummaries": [views.ingestion_job_summary(j) for j in found.items], **_token(found.next_token)}


def stop_ingestion_job(request: Request, params: dict[str, Any]) -> dict:
    job = services(request).knowledge.stop_ingestion_job(params["knowledgeBaseId"], params["dataSourceId"], params["ingestionJobId"])
    return {"ingestionJob": views.ingestion_job(job)}


def _token(next_token: str | None) -> dict:
    return {"nextToken": next_token} if next_token else {}


HANDLERS = {
    "CreateKnowledgeBase": create_knowledge_base,
    "GetKnowledgeBase": get_knowledge_base,
    "ListKnowledgeBases": list_knowledge_bases,
    "UpdateKnowledgeBase": update_knowledge_base,
    "DeleteKnowledgeBase": delete_knowledge_base,
    "CreateDataSource": create_data_source,
    "GetDataSource": get_data_source,
    "ListDataSources": list_data_sources,
    "DeleteDataSource": delete_data_source,
    "StartIngestionJob": start_ingestion_job,
    "GetIngestionJob": get_ingestion_job,
    "ListIngestionJobs": list_ingestion_jobs,
    "StopIngestionJob": stop_ingestion_job,
}
