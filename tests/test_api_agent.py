"""`bedrock-agent` and `bedrock-agent-runtime` through real boto3 clients against a real `tuneforge serve`:
knowledge bases, data sources, ingestion jobs (real ingestion processes), Retrieve and RetrieveAndGenerate
(tiny random models in the server's worker pool)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker

ROLE = "arn:aws:iam::123456789012:role/tuneforge-kb"
TOKEN = "kb-create-token-0123456789abcdefghij"  # clientToken: 33-256 characters

pytestmark = pytest.mark.server(embedder=True)


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """The data source's folder: two documents, one with a metadata sidecar."""
    docs = tmp_path_factory.mktemp("docs")
    (docs / "brokers.md").write_text("# Brokers\n\nEvery broker or dealer must register with the Commission before trading.")
    (docs / "brokers.md.metadata.json").write_text('{"metadataAttributes": {"topic": "brokers", "year": 1934}}')
    (docs / "hotel.txt").write_text("The guest checks in at the hotel and pays with a credit card.")
    return docs


@pytest.fixture(scope="module")
def agent(server):
    c = server.client("bedrock-agent")
    c.shapes = ShapeChecker(c)
    yield c
    assert c.shapes.problems == [], c.shapes.problems


@pytest.fixture(scope="module")
def agent_runtime(server):
    c = server.client("bedrock-agent-runtime")
    c.shapes = ShapeChecker(c)
    yield c
    assert c.shapes.problems == [], c.shapes.problems


def code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def wait_job(agent, kb_id, ds_id, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = agent.get_ingestion_job(knowledgeBaseId=kb_id, dataSourceId=ds_id, ingestionJobId=job_id)["ingestionJob"]
        if job["status"] in ("COMPLETE", "FAILED", "STOPPED"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"ingestion job still {job['status']}")


def test_knowledge_base_lifecycle_ingestion_and_retrieval(server, agent, agent_runtime, docs):
    config = {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/tiny.embedder"}}
    created = agent.create_knowledge_base(name="statutes", roleArn=ROLE, knowledgeBaseConfiguration=config, clientToken=TOKEN, description="laws")
    kb = created["knowledgeBase"]
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202 and kb["status"] == "ACTIVE"
    kb_id = kb["knowledgeBaseId"]
    assert agent.create_knowledge_base(name="statutes", roleArn=ROLE, knowledgeBaseConfiguration=config, clientToken=TOKEN)["knowledgeBase"]["knowledgeBaseId"] == kb_id
    with pytest.raises(ClientError) as err:
        agent.create_knowledge_base(name="statutes", roleArn=ROLE, knowledgeBaseConfiguration=config)
    assert code(err.value) == ("ConflictException", 409)
    with pytest.raises(ClientError) as err:
        agent.create_knowledge_base(name="bad", roleArn=ROLE, knowledgeBaseConfiguration={
            "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/tiny"}})
    assert code(err.value) == ("ValidationException", 400) and "not an embedding model" in str(err.value)
    assert agent.get_knowledge_base(knowledgeBaseId=kb_id)["knowledgeBase"]["name"] == "statutes"
    assert [s["knowledgeBaseId"] for s in agent.list_knowledge_bases(maxResults=10)["knowledgeBaseSummaries"]] == [kb_id]
    updated = agent.update_knowledge_base(knowledgeBaseId=kb_id, name="statutes", roleArn=ROLE, knowledgeBaseConfiguration=config,
                                          description="securities laws")["knowledgeBase"]
    assert updated["description"] == "securities laws"
    with pytest.raises(ClientError) as err:
        agent.get_knowledge_base(knowledgeBaseId="MISSING000")
    assert code(err.value) == ("ResourceNotFoundException", 404)

    source = {"type": "S3", "s3Configuration": {"bucketArn": f"file://{docs}"}}
    with pytest.raises(ClientError) as err:
        agent.create_data_source(knowledgeBaseId=kb_id, name="docs", dataSourceConfiguration=source, vectorIngestionConfiguration={
            "chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": 512, "overlapPercentage": 10}}})
    assert code(err.value) == ("ValidationException", 400) and "fixedSizeChunkingConfiguration.maxTokens" in str(err.value)
    ds = agent.create_data_source(knowledgeBaseId=kb_id, name="docs", dataSourceConfiguration=source, vectorIngestionConfiguration={
        "chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": 100, "overlapPercentage": 10}}})
    assert ds["ResponseMetadata"]["HTTPStatusCode"] == 200
    ds_id = ds["dataSource"]["dataSourceId"]
    assert agent.get_data_source(knowledgeBaseId=kb_id, dataSourceId=ds_id)["dataSource"]["dataDeletionPolicy"] == "DELETE"
    assert [d["dataSourceId"] for d in agent.list_data_sources(knowledgeBaseId=kb_id)["dataSourceSummaries"]] == [ds_id]

    started = agent.start_ingestion_job(knowledgeBaseId=kb_id, dataSourceId=ds_id, description="first sync")
    assert started["ResponseMetadata"]["HTTPStatusCode"] == 202 and started["ingestionJob"]["status"] == "STARTING"
    job_id = started["ingestionJob"]["ingestionJobId"]
    with pytest.raises(ClientError) as err:
        agent.start_ingestion_job(knowledgeBaseId=kb_id, dataSourceId=ds_id)
    assert code(err.value) == ("ConflictException", 409)
    job = wait_job(agent, kb_id, ds_id, job_id)
    assert job["status"] == "COMPLETE", job.get("failureReasons")
    assert job["statistics"]["numberOfDocumentsScanned"] == 2 and job["statistics"]["numberOfNewDocumentsIndexed"] == 2
    assert job["statistics"]["numberOfMetadataDocumentsScanned"] == 1
    listed = agent.list_ingestion_jobs(knowledgeBaseId=kb_id, dataSourceId=ds_id, filters=[
        {"attribute": "STATUS", "operator": "EQ", "values": ["COMPLETE"]}], sortBy={"attribute": "STARTED_AT", "order": "DESCENDING"})
    assert [j["ingestionJobId"] for j in listed["ingestionJobSummaries"]] == [job_id]

    results = agent_runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "who must register as a broker?"}, retrievalConfiguration={
        "vectorSearchConfiguration": {"numberOfResults": 1, "overrideSearchType": "HYBRID"}})["retrievalResults"]
    top = results[0]
    assert len(results) == 1 and "register with the Commission" in top["content"]["text"]
    assert top["location"] == {"type": "CUSTOM", "customDocumentLocation": {"id": f"file://{docs}/brokers.md"}}
    assert top["metadata"]["x-amz-bedrock-kb-source-uri"] == f"file://{docs}/brokers.md"
    assert top["metadata"]["x-amz-bedrock-kb-data-source-id"] == ds_id and top["metadata"]["x-amz-bedrock-kb-chunk-id"]
    assert top["metadata"]["topic"] == "brokers" and top["metadata"]["year"] == 1934
    filtered = agent_runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "hotel guest"}, retrievalConfiguration={
        "vectorSearchConfiguration": {"numberOfResults": 5, "filter": {"greaterThan": {"key": "year", "value": 1900}}}})["retrievalResults"]
    assert [r["metadata"]["topic"] for r in filtered] == ["brokers"]
    with pytest.raises(ClientError) as err:
        agent_runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "x"}, retrievalConfiguration={
            "vectorSearchConfiguration": {"filter": {"greaterThan": {"key": "year", "value": "soon"}}}})
    assert code(err.value) == ("ValidationException", 400) and "filter.greaterThan.value" in str(err.value)

    rag = {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
        "knowledgeBaseId": kb_id, "modelArn": "tiny",
        "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 1}},
        "generationConfiguration": {"promptTemplate": {"textPromptTemplate": "Results: $search_results$ Question: $query$"},
                                    "inferenceConfig": {"textInferenceConfig": {"maxTokens": 12, "temperature": 0}}}}}
    first = agent_runtime.retrieve_and_generate(input={"text": "Who must register?"}, retrieveAndGenerateConfiguration=rag)
    assert first["sessionId"] and first["output"]["text"]
    for citation in first["citations"]:
        part = citation["generatedResponsePart"]["textResponsePart"]
        assert first["output"]["text"][part["span"]["start"]:part["span"]["end"]] == part["text"]
        assert citation["retrievedReferences"][0]["location"]["type"] == "CUSTOM"
    follow = agent_runtime.retrieve_and_generate(input={"text": "And when?"}, sessionId=first["sessionId"], retrieveAndGenerateConfiguration=rag)
    assert follow["sessionId"] == first["sessionId"]
    with pytest.raises(ClientError) as err:
        agent_runtime.retrieve_and_generate(input={"text": "Hi"}, sessionId="unknown-session", retrieveAndGenerateConfiguration=rag)
    assert code(err.value) == ("ResourceNotFoundException", 404)

    deleted = agent.delete_data_source(knowledgeBaseId=kb_id, dataSourceId=ds_id)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202 and deleted["status"] == "DELETING"
    assert agent_runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "broker"})["retrievalResults"] == []
    assert agent.delete_knowledge_base(knowledgeBaseId=kb_id)["status"] == "DELETING"
    assert agent.list_knowledge_bases()["knowledgeBaseSummaries"] == []
    assert {"CreateKnowledgeBase", "GetIngestionJob", "ListIngestionJobs", "CreateDataSource"} <= agent.shapes.checked
    assert {"Retrieve", "RetrieveAndGenerate"} <= agent_runtime.shapes.checked
