"""Knowledge bases end to end below HTTP: service validation, incremental sync, ingestion processes, Retrieve.

Real pieces throughout: a tiny random sentence-transformers model in an embedding worker process, the SQLite
vector store, a real database (SQLite and PostgreSQL for the service), local folders and moto's S3 server.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from tuneforge import storage
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import IngestionJobRow
from tuneforge.errors import Conflict, InvalidInput, NotFound
from tuneforge.knowledge.embedding import embedding_model_facts
from tuneforge.knowledge.ingest import CHUNK_ID, DATA_SOURCE_ID, PAGE_NUMBER, SOURCE_URI, data_source_chunker, sync
from tuneforge.knowledge.requests import IngestionRequest
from tuneforge.knowledge.retrieve import Retriever, reciprocal_rank_fusion
from tuneforge.knowledge.service import KnowledgeBaseService
from tuneforge.knowledge.stores.base import Hit, StoredChunk
from tuneforge.models.specs import embedding_spec
from tuneforge.serving.client import WorkerProcess
from tuneforge.settings import load_settings
from tuneforge.wire.knowledge import data_source_request, knowledge_base_request, retrieval_configuration

ROLE = "arn:aws:iam::123456789012:role/kb"
TIMEOUT = 120
VECTOR = {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": "tiny.embedder"}}

DOCS = {
    "brokers.md": "# Brokers\n\nEvery broker or dealer must register with the Commission before trading securities.\n\n"
                  "Registration requires a filed application describing the firm's officers.",
    "exchanges.txt": "National securities exchanges file their rules with the Commission. "
                     "An exchange may discipline its members for violations of its rules.",
    "hotel.html": "<html><body><h1>Hotel</h1><p>The guest checks in at the hotel and pays with a credit card.</p></body></html>",
}


@pytest.fixture
def services(tmp_path, monkeypatch, tiny_embedder_dir, database_url):
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TUNEFORGE_DATABASE_URL", database_url)
    settings = load_settings()
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny.embedder", str(tiny_embedder_dir), embedding=True)
    kbs = KnowledgeBaseService(settings, sessions, catalog)
    yield settings, sessions, catalog, kbs
    for kb in kbs.list_knowledge_bases().items:  # stops ingestion processes a failed test left running
        kbs.delete_knowledge_base(kb.knowledge_base_id)


@pytest.fixture(scope="module")
def embedder(tiny_embedder_dir):
    with WorkerProcess(embedding_spec_for(tiny_embedder_dir)) as worker:
        yield worker


def embedding_spec_for(path: Path):
    from tuneforge.inference.spec import WorkerSpec

    return WorkerSpec("tiny.embedder", str(path), task="embed")


def write_docs(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)


def create_kb(kbs: KnowledgeBaseService, *, name: str, role_arn: str, configuration: dict, client_token: str | None = None):
    """CreateKnowledgeBase as the API and the CLI make it: Bedrock's members, the typed request, the service."""
    return kbs.create_knowledge_base(knowledge_base_request(
        {"name": name, "roleArn": role_arn, "knowledgeBaseConfiguration": configuration, "clientToken": client_token}))


def create_ds(kbs: KnowledgeBaseService, kb_id: str, *, name: str, configuration: dict, vector_ingestion_configuration: dict | None = None):
    return kbs.create_data_source(kb_id, data_source_request(
        {"name": name, "dataSourceConfiguration": configuration, "vectorIngestionConfiguration": vector_ingestion_configuration}))


def folder_source(folder: Path, prefix: str | None = None) -> dict:
    s3 = {"bucketArn": f"file://{folder}"} | ({"inclusionPrefixes": [prefix]} if prefix else {})
    return {"type": "S3", "s3Configuration": s3}


def test_knowledge_base_and_data_source_validation(services, tmp_path):
    _settings, _sessions, catalog, kbs = services
    with pytest.raises(InvalidInput, match="not an embedding model") as err:
        create_kb(kbs, 
            name="kb", role_arn=ROLE, configuration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                "embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/huggingfacetb.smollm2-135m-instruct-v1"}})
    assert err.value.field.endswith("embeddingModelArn")
    with pytest.raises(InvalidInput, match="VECTOR"):
        create_kb(kbs, name="kb", role_arn=ROLE, configuration={"type": "KENDRA"})
    with pytest.raises(InvalidInput, match="dimensions 384"):
        create_kb(kbs, name="kb", role_arn=ROLE, configuration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
            "embeddingModelArn": "tiny.embedder",
            "embeddingModelConfiguration": {"bedrockEmbeddingModelConfiguration": {"dimensions": 384}}}})

    kb = create_kb(kbs, name="kb", role_arn=ROLE, configuration=VECTOR, client_token="t" * 33)
    assert (kb.embedding_model_id, kb.dimension, kb.embedding_max_tokens, kb.status) == ("tiny.embedder", 32, 128, "ACTIVE")
    assert kb.knowledge_base_arn.endswith(f":knowledge-base/{kb.knowledge_base_id}") and len(kb.knowledge_base_id) == 10
    assert create_kb(kbs, name="other", role_arn=ROLE, configuration=VECTOR, client_token="t" * 33).knowledge_base_id == kb.knowledge_base_id
    with pytest.raises(Conflict):
        create_kb(kbs, name="kb", role_arn=ROLE, configuration=VECTOR)
    with pytest.raises(NotFound):
        kbs.get_knowledge_base("NOPE000000")

    kb_id = kb.knowledge_base_id
    with pytest.raises(InvalidInput) as err:
        create_ds(kbs, kb_id, name="ds", configuration={"type": "S3", "s3Configuration": {"bucketArn": "my-bucket"}})
    assert err.value.field == "dataSourceConfiguration.s3Configuration.bucketArn"
    with pytest.raises(InvalidInput) as err:
        create_ds(kbs, kb_id, name="ds", configuration={"type": "WEB"})
    assert err.value.field == "dataSourceConfiguration.type"
    with pytest.raises(InvalidInput, match="reads at most 126 tokens") as err:  # 128 word pieces minus [CLS] and [SEP]
        create_ds(kbs, kb_id, name="ds", configuration=folder_source(tmp_path), vector_ingestion_configuration={
            "chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE",
                                      "fixedSizeChunkingConfiguration": {"maxTokens": 300, "overlapPercentage": 20}}})
    assert err.value.field == "vectorIngestionConfiguration.chunkingConfiguration.fixedSizeChunkingConfiguration.maxTokens"
    with pytest.raises(InvalidInput, match="overlapPercentage"):
        create_ds(kbs, kb_id, name="ds", configuration=folder_source(tmp_path), vector_ingestion_configuration={
            "chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": 100}}})
    ds = create_ds(kbs, kb_id, name="ds", configuration={"type": "S3", "s3Configuration": {
        "bucketArn": "arn:aws:s3:::my-bucket", "inclusionPrefixes": ["laws/"]}})
    assert ds.location_uri == "s3://my-bucket/laws/" and ds.data_deletion_policy == "DELETE"
    assert [d.data_source_id for d in kbs.list_data_sources(kb_id).items] == [ds.data_source_id]
    kbs.delete_data_source(kb_id, ds.data_source_id)
    with pytest.raises(NotFound):
        kbs.get_data_source(kb_id, ds.data_source_id)
    kbs.delete_knowledge_base(kb_id)
    assert [k.name for k in kbs.list_knowledge_bases().items] == []


@pytest.mark.slow  # an embedding worker process
def test_incremental_sync_indexes_only_what_changed(services, embedder, tmp_path):
    settings, sessions, _catalog, kbs = services
    folder = tmp_path / "docs"
    write_docs(folder, DOCS)
    (folder / "brokers.md.metadata.json").write_text(json.dumps({"metadataAttributes": {"topic": "brokers", "year": 1934}}))
    kb = create_kb(kbs, name="kb", role_arn=ROLE, configuration=VECTOR)
    ds = create_ds(kbs, kb.knowledge_base_id, name="ds", configuration=folder_source(folder), vector_ingestion_configuration={
        "chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": 20, "overlapPercentage": 10}}})
    facts = embedding_model_facts(Path(embedding_spec(kbs.catalog, "tiny.embedder").checkpoint))
    chunker = data_source_chunker(ds.vector_ingestion_configuration["chunkingConfiguration"], tokenizer=facts.tokenizer(),
                                  token_limit=facts.chunk_token_limit, embed=embedder.embed)
    store = kbs.open_store(kb)
    progress = []

    def run():
        return sync(ds, store=store, sessions=sessions, chunker=chunker, embed=embedder.embed,
                    token_limit=facts.chunk_token_limit, on_progress=lambda p, _r: progress.append(p))

    try:
        first = run()
        assert first.statistics == {
            "numberOfDocumentsScanned": 3, "numberOfMetadataDocumentsScanned": 1, "numberOfNewDocumentsIndexed": 3,
            "numberOfModifiedDocumentsIndexed": 0, "numberOfMetadataDocumentsModified": 0, "numberOfDocumentsDeleted": 0,
            "numberOfDocumentsFailed": 0, "numberOfDocumentsSkipped": 0,
        }
        assert {p["phase"] for p in progress} >= {"listing", "indexing", "complete"}
        brokers = f"file://{folder}/brokers.md"
        assert store.document_ids() == {f"file://{folder}/{n}" for n in DOCS}
        assert store.count() > 3  # 20-token chunks: the longer documents split
        hits = store.keyword_search("register Commission", k=10)
        chunk = next(h.chunk for h in hits if h.chunk.document_id == brokers)
        assert chunk.metadata["topic"] == "brokers" and chunk.metadata["year"] == 1934
        assert chunk.metadata[SOURCE_URI] == brokers and chunk.metadata[DATA_SOURCE_ID] == ds.data_source_id
        assert chunk.metadata[CHUNK_ID] == chunk.chunk_id and PAGE_NUMBER not in chunk.metadata  # Markdown has no pages
        before = {h.chunk.chunk_id for h in store.keyword_search("hotel guest", k=10)}

        assert run().statistics["numberOfNewDocumentsIndexed"] == 0  # nothing changed: nothing re-embedded
        assert sum(run().statistics[k] for k in ("numberOfModifiedDocumentsIndexed", "numberOfDocumentsDeleted")) == 0

        (folder / "exchanges.txt").write_text("Exchanges now also list options on securities.")  # modified
        (folder / "brokers.md.metadata.json").write_text(json.dumps({"metadataAttributes": {"topic": "dealers"}}))  # sidecar only
        (folder / "hotel.html").write_bytes(b"%PDF-1.4 not really a pdf")  # now broken: keeps its previous chunks
        (folder / "new.md").write_text("A new document about margin requirements.")
        (folder / "gone.txt").write_text("temporary")
        second = run()
        assert (second.statistics["numberOfNewDocumentsIndexed"], second.statistics["numberOfModifiedDocumentsIndexed"],
                second.statistics["numberOfMetadataDocumentsModified"], second.statistics["numberOfDocumentsFailed"]) == (2, 1, 1, 1)
        assert len(second.failure_reasons) == 1 and f"file://{folder}/hotel.html" in second.failure_reasons[0]
        assert {h.chunk.chunk_id for h in store.keyword_search("hotel guest", k=10)} == before
        assert store.keyword_search("options", k=3)[0].chunk.document_id == f"file://{folder}/exchanges.txt"
        assert not [h for h in store.keyword_search("discipline members violations", k=10) if "discipline" in h.chunk.text]
        assert next(h.chunk for h in store.keyword_search("register", k=10) if h.chunk.document_id == brokers).metadata["topic"] == "dealers"

        (folder / "gone.txt").unlink()
        third = run()
        assert third.statistics["numberOfDocumentsDeleted"] == 1 and f"file://{folder}/gone.txt" not in store.document_ids()
        assert third.statistics["numberOfDocumentsFailed"] == 1  # still broken, still counted, still kept
    finally:
        store.close()


@pytest.mark.slow  # an embedding worker process
def test_none_chunking_fails_documents_longer_than_the_model_reads(services, embedder, tmp_path):
    _settings, sessions, _catalog, kbs = services
    folder = tmp_path / "docs"
    write_docs(folder, {"short.txt": "Short enough.", "long.txt": " ".join(["securities"] * 400)})
    kb = create_kb(kbs, name="kb", role_arn=ROLE, configuration=VECTOR)
    config = {"chunkingConfiguration": {"chunkingStrategy": "NONE"}}
    ds = create_ds(kbs, kb.knowledge_base_id, name="ds", configuration=folder_source(folder), vector_ingestion_configuration=config)
    facts = embedding_model_facts(Path(embedding_spec(kbs.catalog, "tiny.embedder").checkpoint))
    chunker = data_source_chunker(config["chunkingConfiguration"], tokenizer=facts.tokenizer(), token_limit=facts.chunk_token_limit, embed=embedder.embed)
    store = kbs.open_store(kb)
    try:
        result = sync(ds, store=store, sessions=sessions, chunker=chunker, embed=embedder.embed, token_limit=facts.chunk_token_limit)
    finally:
        store.close()
    assert result.statistics["numberOfNewDocumentsIndexed"] == 1 and result.statistics["numberOfDocumentsFailed"] == 1
    assert "longer than the 126 the embedding model reads" in result.failure_reasons[0]


def test_reciprocal_rank_fusion_rewards_agreement():
    def hit(cid):
        return Hit(StoredChunk(cid, "d", cid, cid, {}), 0.0)

    fused = reciprocal_rank_fusion([[hit("a"), hit("b"), hit("c")], [hit("b"), hit("d"), hit("e")]], k=3)
    assert [h.chunk.chunk_id for h in fused] == ["b", "a", "d"]  # found by both rankings beats first in one
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61) and fused[1].score == pytest.approx(1 / 61)


def wait_job(kbs, kb_id, ds_id, job_id, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = kbs.get_ingestion_job(kb_id, ds_id, job_id)
        if job.status in ("COMPLETE", "FAILED", "STOPPED"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"ingestion job {job_id} still {job.status} after {timeout}s: {job.progress}")


@pytest.mark.slow  # ingestion job processes
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ingestion_job_process_on_s3_then_retrieve(services, embedder, s3_env):
    _settings, _sessions, _catalog, kbs = services
    bucket = s3_env.removeprefix("s3://")
    for name, text in DOCS.items():
        storage.write_bytes(f"{s3_env}/kb/{name}", text.encode())
    storage.write_bytes(f"{s3_env}/kb/brokers.md.metadata.json", json.dumps({"metadataAttributes": {"topic": "brokers"}}).encode())
    storage.write_bytes(f"{s3_env}/elsewhere/ignored.txt", b"not under the prefix")
    kb = create_kb(kbs, name="kb", role_arn=ROLE, configuration=VECTOR)
    kb_id = kb.knowledge_base_id
    ds = create_ds(kbs, kb_id, name="ds", configuration={"type": "S3", "s3Configuration": {
        "bucketArn": f"arn:aws:s3:::{bucket}", "inclusionPrefixes": ["kb/"]}})
    job = kbs.start_ingestion_job(kb_id, ds.data_source_id, IngestionRequest(description="first"))
    assert job.status == "STARTING"
    with pytest.raises(Conflict):
        kbs.start_ingestion_job(kb_id, ds.data_source_id)
    done = wait_job(kbs, kb_id, ds.data_source_id, job.ingestion_job_id)
    assert done.status == "COMPLETE", done.failure_reasons
    assert done.statistics["numberOfDocumentsScanned"] == 3 and done.statistics["numberOfNewDocumentsIndexed"] == 3
    assert done.statistics["numberOfMetadataDocumentsScanned"] == 1 and done.progress["phase"] == "complete"
    again = wait_job(kbs, kb_id, ds.data_source_id, kbs.start_ingestion_job(kb_id, ds.data_source_id).ingestion_job_id)
    assert again.statistics["numberOfNewDocumentsIndexed"] == 0 and again.status == "COMPLETE"
    listed = kbs.list_ingestion_jobs(kb_id, ds.data_source_id).items
    assert [j.ingestion_job_id for j in listed] == [again.ingestion_job_id, job.ingestion_job_id]

    retriever = Retriever(kbs, embedder_for=lambda model_id: embedder.embed)
    try:
        semantic = retriever.retrieve(kb_id, "who must register with the Commission?", retrieval_configuration(
            {"vectorSearchConfiguration": {"numberOfResults": 2}})).results
        assert len(semantic) == 2 and semantic[0]["score"] >= semantic[1]["score"]
        hybrid = retriever.retrieve(kb_id, "broker dealer register", retrieval_configuration({"vectorSearchConfiguration": {
            "numberOfResults": 3, "overrideSearchType": "HYBRID"}})).results
        top = hybrid[0]
        assert top["metadata"][SOURCE_URI] == f"{s3_env}/kb/brokers.md"  # BM25 finds the exact words, fused first
        assert top["location"] == {"type": "S3", "s3Location": {"uri": f"{s3_env}/kb/brokers.md"}}
        assert "register" in top["content"]["text"] and top["metadata"]["topic"] == "brokers"
        filtered = retriever.retrieve(kb_id, "the hotel guest", retrieval_configuration({"vectorSearchConfiguration": {
            "numberOfResults": 5, "filter": {"equals": {"key": "topic", "value": "brokers"}}}})).results
        assert filtered and all(r["metadata"]["topic"] == "brokers" for r in filtered)
        with pytest.raises(InvalidInput) as err:
            retrieval_configuration({"vectorSearchConfiguration": {"filter": {"equals": {"key": "topic"}}}})
        assert err.value.field == "retrievalConfiguration.vectorSearchConfiguration.filter.equals.value"
        with pytest.raises(InvalidInput) as err:
            retrieval_configuration({"vectorSearchConfiguration": {"numberOfResults": 101}})
        assert err.value.field.endswith("numberOfResults")
    finally:
        retriever.close()


@pytest.mark.slow  # ingestion job processes
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_job_whose_process_died_is_failed_and_a_rerun_resumes(services, tmp_path):
    _settings, sessions, _catalog, kbs = services
    kb = create_kb(kbs, name="kb", role_arn=ROLE, configuration=VECTOR)
    ds = create_ds(kbs, kb.knowledge_base_id, name="ds", configuration=folder_source(tmp_path))
    with session_scope(sessions) as session:
        session.add(IngestionJobRow(
            ingestion_job_id="DEAD000000", knowledge_base_id=kb.knowledge_base_id, data_source_id=ds.data_source_id,
            status="IN_PROGRESS", statistics={}, failure_reasons=[], progress={"phase": "indexing"}, work_dir=str(tmp_path),
            pid=2**22 + 12345, pid_started_at=1.0, host=None, heartbeat_at=utcnow() - timedelta(minutes=5),
        ))
    assert kbs.reconcile() == ["DEAD000000"]
    job = kbs.get_ingestion_job(kb.knowledge_base_id, ds.data_source_id, "DEAD000000")
    assert job.status == "FAILED" and "start a new ingestion job" in job.failure_reasons[-1]
    new = kbs.start_ingestion_job(kb.knowledge_base_id, ds.data_source_id)  # no longer blocked by the dead one
    assert wait_job(kbs, kb.knowledge_base_id, ds.data_source_id, new.ingestion_job_id).status == "COMPLETE"


@pytest.mark.slow  # an embedding worker process
def test_embedding_vectors_are_what_the_store_holds(services, embedder, tmp_path):
    """The chunk vectors stored are the worker's embeddings of the chunk text (search by a chunk's own text finds it)."""
    _settings, sessions, _catalog, kbs = services
    folder = tmp_path / "docs"
    write_docs(folder, DOCS)
    kb = create_kb(kbs, name="kb", role_arn=ROLE, configuration=VECTOR)
    ds = create_ds(kbs, kb.knowledge_base_id, name="ds", configuration=folder_source(folder, "brok"))
    facts = embedding_model_facts(Path(embedding_spec(kbs.catalog, "tiny.embedder").checkpoint))
    store = kbs.open_store(kb)
    try:
        sync(ds, store=store, sessions=sessions, chunker=data_source_chunker(None, tokenizer=facts.tokenizer(),
             token_limit=facts.chunk_token_limit, embed=embedder.embed), embed=embedder.embed, token_limit=facts.chunk_token_limit)
        assert store.document_ids() == {f"file://{folder}/brokers.md"}  # the inclusion prefix selected one file
        text = store.keyword_search("register", k=1)[0].chunk.text
        best = store.search(embedder.embed([text])[0], k=1)[0]
        assert best.chunk.text == text and best.score == pytest.approx(1.0, abs=1e-4)
        assert np.isclose(np.linalg.norm(embedder.embed([text])[0]), 1.0)
    finally:
        store.close()
