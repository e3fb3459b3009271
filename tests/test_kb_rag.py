"""RetrieveAndGenerate mechanics on real worker processes: the tiny random Llama generates (gibberish, so the
tests check sessions, rewriting, template substitution and citation spans, not answer quality), the tiny
random sentence-transformers model embeds. One slow test runs SmolLM2 + all-MiniLM-L6-v2 on real statutes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tuneforge.catalog.builtin import DEFAULT_EMBEDDING_MODEL_ID
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.db.tables import RagSessionRow
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.knowledge.embedding import embedding_model_facts
from tuneforge.knowledge.generate import OUTPUT_FORMAT_INSTRUCTIONS, RagService, cite, reference
from tuneforge.knowledge.ingest import SOURCE_URI, data_source_chunker, sync
from tuneforge.knowledge.retrieve import Retriever
from tuneforge.knowledge.service import KnowledgeBaseService
from tuneforge.models.specs import embedding_spec, foundation_spec
from tuneforge.knowledge.stores.base import Hit, StoredChunk
from tuneforge.serving.client import WorkerProcess
from tuneforge.settings import load_settings
from tuneforge.wire.knowledge import data_source_request, knowledge_base_request, retrieval_configuration

ROLE = "arn:aws:iam::123456789012:role/kb"
USCODE = Path("/work/shared/data/uscode-securities/title-15")


def index_folder(kbs: KnowledgeBaseService, sessions, folder: Path, embedding_model: str, embed, chunking: dict | None = None) -> str:
    kb = kbs.create_knowledge_base(knowledge_base_request({"name": "kb", "roleArn": ROLE, "knowledgeBaseConfiguration": {
        "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": embedding_model}}}))
    ds = kbs.create_data_source(kb.knowledge_base_id, data_source_request({
        "name": "ds", "dataSourceConfiguration": {"type": "S3", "s3Configuration": {"bucketArn": f"file://{folder}"}},
        "vectorIngestionConfiguration": {"chunkingConfiguration": chunking} if chunking else None}))
    facts = embedding_model_facts(Path(embedding_spec(kbs.catalog, embedding_model).checkpoint))
    store = kbs.open_store(kb)
    try:
        result = sync(ds, store=store, sessions=sessions, chunker=data_source_chunker(chunking, tokenizer=facts.tokenizer(),
                      token_limit=facts.chunk_token_limit, embed=embed), embed=embed, token_limit=facts.chunk_token_limit)
    finally:
        store.close()
    assert result.statistics["numberOfDocumentsFailed"] == 0, result.failure_reasons
    return kb.knowledge_base_id


class Recorder:
    """Passes requests to a real worker and keeps them, to check what the model was asked."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return self.worker.generate(request)


@pytest.fixture
def rag(tmp_path, monkeypatch, tiny_model_dir, tiny_embedder_dir):
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    settings = load_settings()
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny", str(tiny_model_dir))
    catalog.add("tiny.embedder", str(tiny_embedder_dir), embedding=True)
    kbs = KnowledgeBaseService(settings, sessions, catalog)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "brokers.md").write_text("# Brokers\n\nEvery broker or dealer must register with the Commission before trading.")
    (folder / "exchanges.txt").write_text("National securities exchanges file their rules with the Commission.")
    (folder / "hotel.txt").write_text("The guest checks in at the hotel and pays with a credit card.")
    with WorkerProcess(embedding_spec(catalog, "tiny.embedder")) as embedder, \
            WorkerProcess(foundation_spec(catalog, catalog.get("tiny"), dtype="float32")) as generator:
        kb_id = index_folder(kbs, sessions, folder, "tiny.embedder", embedder.embed)
        retriever = Retriever(kbs, embedder_for=lambda _model: embedder.embed)
        recorder = Recorder(generator)
        yield RagService(sessions, retriever, generator_for=lambda _model: recorder), recorder, kb_id, sessions
        retriever.close()


@pytest.mark.slow  # generation and embedding worker processes
def test_sessions_rewriting_templates_and_citations(rag):
    service, recorder, kb_id, sessions = rag
    # the tiny model reads 256 tokens: one result and a short answer keep the default prompt within it
    # a filter pins the passage (its sentence is in the tiny tokenizer's corpus, so few tokens): the prompt's
    # length must not hang on a tie in the random embeddings
    config = retrieval_configuration({"vectorSearchConfiguration": {"numberOfResults": 1, "overrideSearchType": "HYBRID",
                                                              "filter": {"stringContains": {"key": SOURCE_URI, "value": "hotel"}}}})
    gen = {"inferenceConfig": {"textInferenceConfig": {"maxTokens": 16, "temperature": 0}}}
    first = service.retrieve_and_generate("Who checks in at the hotel?", kb_id=kb_id, model_id="tiny",
                                          retrieval_configuration=config, generation_configuration=gen)
    assert len(first.session_id) >= 2 and first.query == "Who checks in at the hotel?"
    assert len(recorder.requests) == 1  # no history: no rewriting
    prompt = recorder.requests[0].messages[0].content
    assert prompt == first.prompt and "Question: Who checks in at the hotel?" in prompt
    retrieved = service.retriever.hits(kb_id, "Who checks in at the hotel?", config)
    assert f"Search results:\n[1] {' '.join(retrieved[0].chunk.content.split())}\n\n" in prompt
    assert OUTPUT_FORMAT_INSTRUCTIONS in prompt and "$search_results$" not in prompt and "$query$" not in prompt
    assert recorder.requests[0].params.max_tokens == 16
    assert first.citations, "every answer cites what it was generated from"
    for citation in first.citations:
        assert first.text[citation.start:citation.end] == citation.text and citation.references
        assert all(h.chunk.metadata[SOURCE_URI].startswith("file://") for h in citation.references)
    assert {h.chunk.chunk_id for c in first.citations for h in c.references} == {retrieved[0].chunk.chunk_id}

    recorder.requests.clear()
    template = "Passages:\n$search_results$\nAsked: $query$\nAnswer briefly."
    follow = service.retrieve_and_generate("And exchanges?", kb_id=kb_id, model_id="tiny", session_id=first.session_id,
                                           retrieval_configuration=config, generation_configuration={
                                               **gen, "promptTemplate": {"textPromptTemplate": template}})
    assert follow.session_id == first.session_id
    rewrite, answer = recorder.requests
    history = rewrite.messages[0].content
    assert "User: Who checks in at the hotel?" in history and f"Assistant: {first.text}" in history
    assert "Follow-up question: And exchanges?" in history and rewrite.params.temperature == 0.0
    assert follow.query.endswith(f" ({first.query})") and "\n" not in follow.query  # the rewrite's first line (gibberish from a random model) + the previous query
    assert answer.messages[0].content.startswith("Passages:\n[1] ") and answer.messages[0].content.endswith("Asked: And exchanges?\nAnswer briefly.")
    with sessions() as session:
        turns = session.get(RagSessionRow, first.session_id).turns
    assert [t["question"] for t in turns] == ["Who checks in at the hotel?", "And exchanges?"]
    assert turns[1]["query"] == follow.query and turns[0]["answer"] == first.text

    with pytest.raises(NotFound):
        service.retrieve_and_generate("Hi?", kb_id=kb_id, model_id="tiny", session_id="no-such-session")
    with pytest.raises(InvalidInput, match=r"\$search_results\$"):
        service.retrieve_and_generate("Hi?", kb_id=kb_id, model_id="tiny", generation_configuration={"promptTemplate": {"textPromptTemplate": "$query$"}})
    with pytest.raises(InvalidInput) as err:
        service.retrieve_and_generate("Hi?", kb_id=kb_id, model_id="tiny", generation_configuration={"inferenceConfig": {"textInferenceConfig": {"topP": 3}}})
    assert err.value.field.endswith("textInferenceConfig.topP")


def test_citation_markers_become_spans_over_the_cleaned_answer():
    hits = [Hit(StoredChunk(c, f"s3://b/{c}.txt", t, t, {SOURCE_URI: f"s3://b/{c}.txt"}), 0.5) for c, t in
            [("a", "Brokers must register with the Commission."), ("b", "Exchanges file their rules with the Commission.")]]
    text, citations = cite("Brokers must register [1]. Exchanges file rules [2][1]. Unrelated words here.", hits)
    assert text == "Brokers must register. Exchanges file rules. Unrelated words here."
    assert [(c.text, [h.chunk.chunk_id for h in c.references]) for c in citations] == [
        ("Brokers must register.", ["a"]), ("Exchanges file rules.", ["a", "b"])]
    assert all(text[c.start:c.end] == c.text for c in citations)
    _, by_words = cite("Exchanges file their rules with the Commission.", hits)  # no markers: shared words decide
    assert [h.chunk.chunk_id for h in by_words[0].references] == ["b"]
    _, fallback = cite("zz qq", hits)
    assert fallback[0].start == 0 and fallback[0].end == 5 and len(fallback[0].references) == 2
    assert reference(hits[0])["location"] == {"type": "S3", "s3Location": {"uri": "s3://b/a.txt"}}


@pytest.mark.slow
def test_real_models_answer_from_real_statutes(tmp_path, monkeypatch):
    if not USCODE.is_dir():
        pytest.skip(f"{USCODE} is absent (shared data)")
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    settings = load_settings()
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    kbs = KnowledgeBaseService(settings, sessions, catalog)
    manifest = {row.split(",")[0].rsplit("/", 1)[-1]: row for row in (USCODE.parent / "MANIFEST.csv").read_text().splitlines()[1:]
                if row.startswith("uscode/title-15/")}
    picked = [name for name in sorted(manifest, key=lambda n: int(n.split("-")[1].split(".")[0]))
              if 400 < (USCODE / name).stat().st_size < 3000][:12]
    folder = tmp_path / "statutes"
    folder.mkdir()
    for name in picked:
        (folder / name).write_bytes((USCODE / name).read_bytes())
    with WorkerProcess(embedding_spec(catalog, DEFAULT_EMBEDDING_MODEL_ID)) as embedder, \
            WorkerProcess(foundation_spec(catalog, catalog.get("huggingfacetb.smollm2-135m-instruct-v1"))) as generator:
        kb_id = index_folder(kbs, sessions, folder, DEFAULT_EMBEDDING_MODEL_ID, embedder.embed)
        heading = next(line for line in (folder / picked[3]).read_text().splitlines() if line.startswith("#### "))
        question = heading.split(". ", 1)[-1].strip()  # the section's title, without its number
        retriever = Retriever(kbs, embedder_for=lambda _m: embedder.embed)
        top = retriever.retrieve(kb_id, question, retrieval_configuration({"vectorSearchConfiguration": {"numberOfResults": 3}})).results
        assert any(r["metadata"][SOURCE_URI].endswith(picked[3]) for r in top), (question, [r["metadata"][SOURCE_URI] for r in top])
        service = RagService(sessions, retriever, generator_for=lambda _m: generator.generate)
        answer = service.retrieve_and_generate(f"What does this say: {question}?", kb_id=kb_id, model_id="smollm2",
                                               generation_configuration={"inferenceConfig": {"textInferenceConfig": {"maxTokens": 80}}})
        assert answer.text.strip() and answer.citations
        assert all(answer.text[c.start:c.end] == c.text for c in answer.citations)
        follow = service.retrieve_and_generate("Who enforces it?", kb_id=kb_id, model_id="smollm2", session_id=answer.session_id,
                                               generation_configuration={"inferenceConfig": {"textInferenceConfig": {"maxTokens": 60}}})
        print(json.dumps({"question": question, "answer": answer.text, "rewritten": follow.query, "follow_up": follow.text}, indent=1))
        assert follow.session_id == answer.session_id and follow.query != "Who enforces it?"
        retriever.close()


@pytest.mark.slow  # generation and embedding worker processes
def test_results_that_do_not_fit_the_context_are_dropped_lowest_first(rag):
    """Three results and a long template overflow the tiny model's 256-token context: the answer comes from
    fewer results (the model refused the longer prompts), never a ValidationException while one result fits."""
    service, recorder, kb_id, _ = rag
    padding = "Answer with care. " * 18  # ~140 tokens of instructions for the tiny tokenizer
    answer = service.retrieve_and_generate(
        "Who registers?", kb_id=kb_id, model_id="tiny",
        retrieval_configuration=retrieval_configuration({"vectorSearchConfiguration": {"numberOfResults": 3}}),
        generation_configuration={"promptTemplate": {"textPromptTemplate": padding + "$search_results$\nQ: $query$"},
                                  "inferenceConfig": {"textInferenceConfig": {"maxTokens": 4, "temperature": 0}}})
    shown = [len(re.findall(r"^\[\d+\] ", r.messages[0].content.split("\nQ: ")[0].replace(padding, "\n"), re.M)) for r in recorder.requests]
    assert len(recorder.requests) >= 2 and shown == sorted(shown, reverse=True) and shown[-1] >= 1
    assert all(len(c.references) <= shown[-1] for c in answer.citations)
