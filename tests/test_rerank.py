"""Rerank, rerankingConfiguration in Retrieve and RetrieveAndGenerate, RetrieveAndGenerateStream and Retrieve's
nextToken, through real boto3 clients against a real `tuneforge serve` (tiny random models in its worker pool).

The reranker is a tiny random cross-encoder registered as any Hugging Face cross-encoder is (`models add
--reranker`); the scores the API answers are checked against sentence-transformers' CrossEncoder(path).predict
run here, so the path from the request to the worker and back is proven end to end (random weights: order and
scores are meaningless, but exact)."""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker, tuneforge
from tuneforge.knowledge.generate import cite, clean_prefix
from tuneforge.knowledge.stores.base import Hit, StoredChunk

ROLE = "arn:aws:iam::123456789012:role/tuneforge-kb"
RERANKER = "arn:aws:bedrock:us-east-1::foundation-model/tiny.reranker"
RERANK_ARN_FIELD = "rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn"
DOCS = {
    "brokers.md": ("Every broker or dealer must register with the Commission before trading.", {"topic": "brokers", "year": 1934}),
    "exchanges.txt": ("National securities exchanges file their rules with the Commission.", {"topic": "exchanges"}),
    "hotel.txt": ("The guest checks in at the hotel and pays with a credit card.", None),
    "advisers.txt": ("Investment advisers owe their clients a duty of care and loyalty.", {"topic": "advisers"}),
    "garden.txt": ("Tomatoes grow best in full sun with regular watering.", None),
    "trains.txt": ("The night train leaves the station at ten and arrives at dawn.", None),
}

pytestmark = pytest.mark.server(embedder=True, reranker=True)


def code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def cross_encoder(tiny_reranker_dir):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_reranker_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def agent_runtime(server):
    c = server.client("bedrock-agent-runtime")
    c.shapes = ShapeChecker(c)
    yield c
    assert c.shapes.problems == [], c.shapes.problems


@pytest.fixture(scope="module")
def kb_id(server, tmp_path_factory):
    """A knowledge base of six one-chunk documents (four with metadata), ingested by a real ingestion job."""
    import json

    docs = tmp_path_factory.mktemp("rerank-docs")
    for name, (text, metadata) in DOCS.items():
        (docs / name).write_text(text)
        if metadata:
            (docs / f"{name}.metadata.json").write_text(json.dumps({"metadataAttributes": metadata}))
    agent = server.client("bedrock-agent")
    kb = agent.create_knowledge_base(name="rerank", roleArn=ROLE, knowledgeBaseConfiguration={
        "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/tiny.embedder"}})["knowledgeBase"]
    ds = agent.create_data_source(knowledgeBaseId=kb["knowledgeBaseId"], name="docs", dataSourceConfiguration={
        "type": "S3", "s3Configuration": {"bucketArn": f"file://{docs}"}})["dataSource"]
    job = agent.start_ingestion_job(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=ds["dataSourceId"])["ingestionJob"]
    deadline = time.monotonic() + 120
    while job["status"] not in ("COMPLETE", "FAILED", "STOPPED") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = agent.get_ingestion_job(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=ds["dataSourceId"],
                                      ingestionJobId=job["ingestionJobId"])["ingestionJob"]
    assert job["status"] == "COMPLETE", job
    return kb["knowledgeBaseId"]


def rerank_config(model: str = RERANKER, **extra) -> dict:
    return {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {"modelConfiguration": {"modelArn": model}, **extra}}


def text_source(text: str) -> dict:
    return {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}}}


def best_first(scores) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


# ---- Rerank -------------------------------------------------------------------------------------------------------
def test_rerank_answers_what_the_cross_encoder_scores(agent_runtime, cross_encoder):
    query = "who must register with the Commission?"
    texts = [text for text, _ in DOCS.values()]
    json_document = {"title": "Rule 15a", "body": "Brokers register."}
    sources = [text_source(t) for t in texts] + [
        {"type": "INLINE", "inlineDocumentSource": {"type": "JSON", "jsonDocument": json_document}}]
    # a JSON document is read as its JSON text
    expected = [float(x) for x in cross_encoder.predict([(query, t) for t in [*texts, '{"title": "Rule 15a", "body": "Brokers register."}']])]
    answer = agent_runtime.rerank(queries=[{"type": "TEXT", "textQuery": {"text": query}}], sources=sources,
                                  rerankingConfiguration=rerank_config(numberOfResults=4))
    results = answer["results"]
    assert [r["index"] for r in results] == best_first(expected)[:4] and "nextToken" not in answer
    assert [r["relevanceScore"] for r in results] == pytest.approx([expected[r["index"]] for r in results], rel=1e-5)
    assert all(r["document"] == sources[r["index"]]["inlineDocumentSource"] for r in results)
    everything = agent_runtime.rerank(queries=[{"type": "TEXT", "textQuery": {"text": query}}], sources=sources,
                                      rerankingConfiguration=rerank_config())["results"]
    assert [r["index"] for r in everything] == best_first(expected)  # without numberOfResults: every source
    assert "Rerank" in agent_runtime.shapes.checked


@pytest.mark.parametrize(("change", "field"), [
    ({"rerankingConfiguration": rerank_config("tiny")}, RERANK_ARN_FIELD),  # a text model
    ({"rerankingConfiguration": rerank_config("tiny.embedder")}, RERANK_ARN_FIELD),  # an embedding model
    ({"rerankingConfiguration": rerank_config(numberOfResults=3)}, "numberOfResults"),  # above the 2 sources
    ({"queries": [{"type": "TEXT", "textQuery": {"text": "a"}}] * 2}, "queries"),
    ({"nextToken": "abc"}, "nextToken"),
    ({"sources": [{"type": "INLINE", "inlineDocumentSource": {"type": "JSON"}}]}, "jsonDocument"),
    ({"rerankingConfiguration": rerank_config(modelConfiguration={"modelArn": RERANKER, "additionalModelRequestFields": {"x": 1}})},
     "additionalModelRequestFields"),
])
def test_rerank_refuses_bad_input_naming_the_field(agent_runtime, change, field):
    request = {"queries": [{"type": "TEXT", "textQuery": {"text": "brokers"}}], "sources": [text_source("a"), text_source("b")],
               "rerankingConfiguration": rerank_config(), **change}
    with pytest.raises(ClientError) as err:
        agent_runtime.rerank(**request)
    assert code(err.value) == ("ValidationException", 400) and field in str(err.value)
    if "numberOfResults" in field:  # Bedrock's own words for it
        assert "Cannot provide numberOfResults value that exceeds the number of sources" in str(err.value)


def test_an_unknown_reranker_is_not_found(agent_runtime):
    with pytest.raises(ClientError) as err:
        agent_runtime.rerank(queries=[{"type": "TEXT", "textQuery": {"text": "q"}}], sources=[text_source("a")],
                             rerankingConfiguration=rerank_config("no.such-reranker"))
    assert code(err.value) == ("ResourceNotFoundException", 404) and RERANK_ARN_FIELD in str(err.value)


# ---- Retrieve with rerankingConfiguration -------------------------------------------------------------------------
def retrieve(agent_runtime, kb_id, query, **vector):
    return agent_runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": query},
                                  retrievalConfiguration={"vectorSearchConfiguration": vector})


def test_retrieve_reranks_the_candidates(agent_runtime, kb_id, cross_encoder):
    query = "who must register?"
    candidates = retrieve(agent_runtime, kb_id, query, numberOfResults=4)["retrievalResults"]
    reranked = retrieve(agent_runtime, kb_id, query, numberOfResults=4,
                        rerankingConfiguration=rerank_config(numberOfRerankedResults=2))["retrievalResults"]
    expected = [float(x) for x in cross_encoder.predict([(query, c["content"]["text"]) for c in candidates])]
    order = best_first(expected)[:2]
    assert [r["metadata"]["x-amz-bedrock-kb-chunk-id"] for r in reranked] == [candidates[i]["metadata"]["x-amz-bedrock-kb-chunk-id"] for i in order]
    assert [r["score"] for r in reranked] == pytest.approx([expected[i] for i in order], rel=1e-5)

    # SELECTIVE metadata: the chosen fields are appended to what the reranker reads
    selective = retrieve(agent_runtime, kb_id, query, numberOfResults=4, rerankingConfiguration=rerank_config(
        metadataConfiguration={"selectionMode": "SELECTIVE", "selectiveModeConfiguration": {"fieldsToInclude": [
            {"fieldName": "topic"}, {"fieldName": "year"}]}}))["retrievalResults"]

    def seen(candidate):
        meta = candidate["metadata"]
        lines = [f"{key}: {meta[key]}" for key in ("topic", "year") if key in meta]
        return candidate["content"]["text"] + ("\n\n" + "\n".join(lines) if lines else "")

    with_metadata = [float(x) for x in cross_encoder.predict([(query, seen(c)) for c in candidates])]
    assert len(selective) == 4  # numberOfRerankedResults defaults to every candidate
    assert sorted(r["score"] for r in selective) == pytest.approx(sorted(with_metadata), rel=1e-5)
    assert any("topic" in c["metadata"] for c in candidates) and with_metadata != pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("reranking", "field"), [
    (rerank_config("tiny"), "bedrockRerankingConfiguration.modelConfiguration.modelArn"),
    (rerank_config(numberOfRerankedResults=5), "bedrockRerankingConfiguration.numberOfRerankedResults"),
    (rerank_config(metadataConfiguration={"selectionMode": "SELECTIVE"}), "bedrockRerankingConfiguration.metadataConfiguration.selectiveModeConfiguration"),
    (rerank_config(metadataConfiguration={"selectionMode": "SOME"}), "bedrockRerankingConfiguration.metadataConfiguration.selectionMode"),
    ({"type": "OTHER"}, "type"),
])
def test_retrieve_refuses_bad_reranking_naming_the_field(agent_runtime, kb_id, reranking, field):
    with pytest.raises(ClientError) as err:
        retrieve(agent_runtime, kb_id, "q", numberOfResults=4, rerankingConfiguration=reranking)
    assert code(err.value) == ("ValidationException", 400)
    assert f"retrievalConfiguration.vectorSearchConfiguration.rerankingConfiguration.{field}" in str(err.value)


# ---- Retrieve's nextToken -----------------------------------------------------------------------------------------
def ids(results) -> list[str]:
    return [r["metadata"]["x-amz-bedrock-kb-chunk-id"] for r in results]


@pytest.mark.parametrize("vector", [{}, {"overrideSearchType": "HYBRID"}, {"rerankingConfiguration": rerank_config()}],
                         ids=["semantic", "hybrid", "reranked"])
def test_pages_continue_the_ranking_without_overlap(agent_runtime, kb_id, vector):
    query = "who registers with the Commission?"
    whole = retrieve(agent_runtime, kb_id, query, numberOfResults=6, **vector)["retrievalResults"]
    assert len(whole) == 6
    if "rerankingConfiguration" in vector:  # pages walk the reranked candidates, numberOfRerankedResults at a time
        vector = {"rerankingConfiguration": rerank_config(numberOfRerankedResults=2)}
        size, numberOfResults = 2, 6
    else:
        size, numberOfResults = 2, 2
    pages, token = [], None
    while True:
        extra = {"nextToken": token} if token else {}
        answer = agent_runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": query}, retrievalConfiguration={
            "vectorSearchConfiguration": {"numberOfResults": numberOfResults, **vector}}, **extra)
        pages.append(ids(answer["retrievalResults"]))
        token = answer.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [size, size, size]
    assert [i for p in pages for i in p] == ids(whole)  # the same ranking, in order, nothing twice
    paginated = agent_runtime.get_paginator("retrieve").paginate(knowledgeBaseId=kb_id, retrievalQuery={"text": query},
        retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": numberOfResults, **vector}})
    assert [i for page in paginated for i in ids(page["retrievalResults"])] == ids(whole)  # boto3's paginator


def test_a_token_belongs_to_its_request(agent_runtime, kb_id):
    first = retrieve(agent_runtime, kb_id, "brokers", numberOfResults=2)
    for query, token, words in [("trains", first["nextToken"], "another request"), ("brokers", "bm90LWEtdG9rZW4", "not one this server issued"),
                                ("brokers", first["nextToken"][:-3] + "abc", "")]:
        with pytest.raises(ClientError) as err:
            agent_runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": query}, nextToken=token,
                                   retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 2}})
        assert code(err.value) == ("ValidationException", 400) and "nextToken" in str(err.value) and words in str(err.value)


# ---- RetrieveAndGenerateStream ------------------------------------------------------------------------------------
def test_the_stream_answers_what_retrieve_and_generate_answers(agent_runtime, kb_id):
    rag = {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
        "knowledgeBaseId": kb_id, "modelArn": "tiny",
        "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 3, "rerankingConfiguration": rerank_config(
            numberOfRerankedResults=1)}},
        "generationConfiguration": {"promptTemplate": {"textPromptTemplate": "Results: $search_results$ Question: $query$"},
                                    "inferenceConfig": {"textInferenceConfig": {"maxTokens": 24, "temperature": 0}}}}}
    streamed = agent_runtime.retrieve_and_generate_stream(input={"text": "Who must register?"}, retrieveAndGenerateConfiguration=rag)
    session_id = streamed["sessionId"]
    events = list(streamed["stream"])
    text = "".join(e["output"]["text"] for e in events if "output" in e)
    citations = [e["citation"] for e in events if "citation" in e]
    assert session_id and text and citations
    assert all(set(e) <= {"output", "citation"} for e in events)
    first_citation = next(i for i, e in enumerate(events) if "citation" in e)
    assert all("citation" in e for e in events[first_citation:])  # the citations follow the whole answer
    for c in citations:
        part = c["generatedResponsePart"]["textResponsePart"]
        assert text[part["span"]["start"]:part["span"]["end"]] == part["text"] and c["retrievedReferences"]
        assert len(c["retrievedReferences"]) == 1  # numberOfRerankedResults: one result reached the prompt

    plain = agent_runtime.retrieve_and_generate(input={"text": "Who must register?"}, retrieveAndGenerateConfiguration=rag)
    assert plain["output"]["text"] == text  # greedy: the same answer, its markers removed the same way
    assert plain["citations"] == citations

    follow = agent_runtime.retrieve_and_generate_stream(input={"text": "And when?"}, sessionId=session_id,
                                                        retrieveAndGenerateConfiguration=rag)
    assert follow["sessionId"] == session_id and "".join(e["output"]["text"] for e in follow["stream"] if "output" in e)
    with pytest.raises(ClientError) as err:
        agent_runtime.retrieve_and_generate_stream(input={"text": "Hi"}, sessionId="unknown-session", retrieveAndGenerateConfiguration=rag)
    assert code(err.value) == ("ResourceNotFoundException", 404)


def test_a_reranker_reads_as_bedrock_lists_its_rerank_models(server):
    details = server.client("bedrock").get_foundation_model(modelIdentifier="tiny.reranker")["modelDetails"]
    assert details["outputModalities"] == ["TEXT"] and details["inferenceTypesSupported"] == ["ON_DEMAND"]
    assert details["responseStreamingSupported"] is False and details["customizationsSupported"] == []


# ---- no server ----------------------------------------------------------------------------------------------------
def test_models_add_registers_a_cross_encoder_as_a_reranker(tmp_path, tiny_reranker_dir, tiny_model_dir):
    import json

    home = tmp_path / "home"
    added = json.loads(tuneforge(home, "models", "add", "my.reranker", str(tiny_reranker_dir), "--reranker", "--json").stdout)
    assert added["modelDetails"]["outputModalities"] == ["TEXT"]
    assert "my.reranker" in tuneforge(home, "models", "list", "--output-modality", "RERANK").stdout
    with pytest.raises(AssertionError, match="not a cross-encoder"):  # a causal LM is no reranker
        tuneforge(home, "models", "add", "not.reranker", str(tiny_model_dir), "--reranker")


@pytest.mark.parametrize("raw", [
    "  Brokers register [1]. Exchanges [2][1] file rules.  [3]",
    "Text [12] more [1234] and [9",
    "[1] leading marker, then words [ 2] and a [x] bracket [1]",
])
def test_streamed_text_is_always_a_prefix_of_the_cited_answer(raw):
    hits = [Hit(StoredChunk(c, c, c, c, {}), 0.5) for c in ("a", "b", "c")]
    answer, _ = cite(raw, hits)
    sent = ""
    for end in range(len(raw) + 1):
        clean = clean_prefix(raw[:end])
        assert answer.startswith(clean), (raw[:end], clean)
        assert clean.startswith(sent)  # never takes back what it sent
        sent = clean
    assert not re.search(r"\[\d{1,3}\]", answer)


@pytest.mark.slow  # an embedding worker process
def test_pages_neither_repeat_nor_skip_across_an_ingestion(tmp_path, monkeypatch, tiny_embedder_dir):
    """A chunk added above the page boundary, or one served on page 1 deleted, between two calls: page 2 still
    continues after the last chunk page 1 served (the token's anchor), not at a position that moved."""
    from tuneforge.catalog.service import Catalog
    from tuneforge.db import open_database
    from tuneforge.knowledge.ingest import SOURCE_URI
    from tuneforge.knowledge.retrieve import Retriever
    from tuneforge.knowledge.service import KnowledgeBaseService
    from tuneforge.models.specs import embedding_spec
    from tuneforge.serving.client import WorkerProcess
    from tuneforge.settings import load_settings
    from tuneforge.wire.knowledge import knowledge_base_request, retrieval_configuration

    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    settings = load_settings()
    catalog = Catalog(settings, open_database(settings.database_url))
    catalog.add("tiny.embedder", str(tiny_embedder_dir), embedding=True)
    kbs = KnowledgeBaseService(settings, catalog.sessions, catalog)
    kb = kbs.create_knowledge_base(knowledge_base_request({"name": "pages", "roleArn": ROLE, "knowledgeBaseConfiguration": {
        "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": "tiny.embedder"}}}))
    query = "who registers with the Commission?"
    with WorkerProcess(embedding_spec(catalog, "tiny.embedder")) as embedder:
        retriever = Retriever(kbs, embedder_for=lambda _m: embedder.embed)
        _, store = retriever.store(kb.knowledge_base_id)  # the retriever's own store: it sees every write at once

        def put(name: str, text: str) -> None:
            store.replace_document(name, [StoredChunk(name, name, text, text, {SOURCE_URI: name}, embedder.embed([text])[0])])

        for name, (text, _) in DOCS.items():
            put(name, text)
        two = retrieval_configuration({"vectorSearchConfiguration": {"numberOfResults": 2}})
        whole = [h.chunk.chunk_id for h in retriever.retrieve(kb.knowledge_base_id, query, retrieval_configuration(
            {"vectorSearchConfiguration": {"numberOfResults": 6}})).hits]
        first = retriever.retrieve(kb.knowledge_base_id, query, two)
        assert [h.chunk.chunk_id for h in first.hits] == whole[:2] and first.next_token

        put("new.txt", query)  # the query itself: it ranks first, above everything page 1 served
        second = retriever.retrieve(kb.knowledge_base_id, query, two, next_token=first.next_token)
        assert [h.chunk.chunk_id for h in second.hits] == whole[2:4]
        store.delete_document(whole[0])  # a chunk page 1 served leaves: the rest moves up one place
        again = retriever.retrieve(kb.knowledge_base_id, query, two, next_token=first.next_token)
        assert [h.chunk.chunk_id for h in again.hits] == whole[2:4]
        retriever.close()
