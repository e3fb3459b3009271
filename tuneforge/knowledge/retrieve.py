"""Retrieve: Bedrock's vectorSearchConfiguration over a knowledge base's store.

    retriever = Retriever(kbs, embedder_for=lambda model_id: pool_worker(model_id).embed)
    results = retriever.retrieve(kb_id, "who registers brokers?", {"vectorSearchConfiguration":
                                 {"numberOfResults": 5, "overrideSearchType": "HYBRID",
                                  "filter": {"equals": {"key": "title", "value": "15"}}}})

SEMANTIC ranks chunks by cosine similarity to the query's embedding. HYBRID (`hybrid_search`) also runs a
BM25 keyword search and fuses both rankings by reciprocal rank fusion (score = sum over rankings of
1 / (RRF_K + rank)), each ranking `hybrid_depth(numberOfResults)` deep: at least HYBRID_DEPTH. Depth matters
because with RRF_K = 60 a chunk's rank 80 in one ranking still adds half of what rank 1 adds: fusing only 4 x
numberOfResults candidates dropped exactly the chunks both signals rank fairly well, and HYBRID lost to a plain
RRF of the same two rankings. Without overrideSearchType: SEMANTIC (what Bedrock does for vector stores
without a text index). Filters apply inside the store before top-k. Each result is
Bedrock's KnowledgeBaseRetrievalResult: content.text (the parent chunk for HIERARCHICAL), location (S3, or
CUSTOM with the file's URI for local folders), score (cosine, or the fused RRF score), metadata.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from tuneforge.errors import InvalidInput
from tuneforge.knowledge.filters import Filter, parse_filter
from tuneforge.knowledge.ingest import SOURCE_URI
from tuneforge.knowledge.stores.base import Hit, VectorStore

RRF_K = 60  # the constant of Cormack et al. (2009); dampens the weight of the very first ranks
HYBRID_CANDIDATES = 4  # each ranking fused is at least this many times numberOfResults deep ...
HYBRID_DEPTH = 100  # ... and at least this deep (see the docstring; bench/retrieval.py measures it)
DEFAULT_RESULTS = 5  # Bedrock's default numberOfResults
MAX_QUERY_CHARS = 20_000
_FIELD = "retrievalConfiguration.vectorSearchConfiguration"

Embed = Callable[[list[str]], np.ndarray]


def location(uri: str) -> dict:
    if uri.startswith("s3://"):
        return {"type": "S3", "s3Location": {"uri": uri}}
    return {"type": "CUSTOM", "customDocumentLocation": {"id": uri}}


def result_of(hit: Hit) -> dict:
    chunk = hit.chunk
    uri = str(chunk.metadata.get(SOURCE_URI, chunk.document_id))
    return {"content": {"text": chunk.content, "type": "TEXT"}, "location": location(uri), "score": float(hit.score),
            "metadata": dict(chunk.metadata)}


def hybrid_depth(k: int) -> int:
    """How deep each ranking of a HYBRID search for k results is."""
    return max(HYBRID_DEPTH, k * HYBRID_CANDIDATES)


def reciprocal_rank_fusion(rankings: list[list[Hit]], *, k: int) -> list[Hit]:
    """The top k of RRF over `rankings` (best first each); equal scores go to the chunk with the better single
    rank, then to the earlier ranking, so ties follow the evidence rather than chunk ids."""
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}  # chunk id -> (its best rank, the index of that ranking)
    chunks = {}
    for index, ranking in enumerate(rankings):
        seen: set[str] = set()
        for rank, hit in enumerate(ranking, start=1):
            cid = hit.chunk.chunk_id
            if cid in seen:
                continue  # a chunk twice in one ranking counts once, at its better rank
            seen.add(cid)
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
            best[cid] = min(best.get(cid, (rank, index)), (rank, index))
            chunks.setdefault(cid, hit.chunk)
    ordered = sorted(scores, key=lambda cid: (-scores[cid], best[cid], cid))[:k]
    return [Hit(chunks[cid], scores[cid]) for cid in ordered]


def hybrid_search(store: VectorStore, vector: np.ndarray, text: str, *, k: int,
                  filter: Filter | None = None) -> list[Hit]:
    """HYBRID: the vector and the keyword ranking, each `hybrid_depth(k)` deep, fused by RRF."""
    depth = hybrid_depth(k)
    return reciprocal_rank_fusion([store.search(vector, k=depth, filter=filter),
                                   store.keyword_search(text, k=depth, filter=filter)], k=k)


def parse_search(configuration: dict | None) -> tuple[int, str, Any]:
    """numberOfResults, search type and parsed filter of a retrievalConfiguration, checked."""
    vector = (configuration or {}).get("vectorSearchConfiguration") or {}
    if not isinstance(vector, dict):
        raise InvalidInput(f"{_FIELD} must be an object", field=_FIELD)
    k = vector.get("numberOfResults", DEFAULT_RESULTS)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
        raise InvalidInput(f"{_FIELD}.numberOfResults must be an integer from 1 to 100, got {k!r}", field=f"{_FIELD}.numberOfResults")
    search_type = vector.get("overrideSearchType") or "SEMANTIC"
    if search_type not in ("SEMANTIC", "HYBRID"):
        raise InvalidInput(f"{_FIELD}.overrideSearchType must be SEMANTIC or HYBRID, got {search_type!r}",
                           field=f"{_FIELD}.overrideSearchType")
    if vector.get("rerankingConfiguration") or vector.get("implicitFilterConfiguration"):
        raise InvalidInput("rerankingConfiguration and implicitFilterConfiguration are not supported", field=_FIELD)
    parsed = parse_filter(vector["filter"], field=f"{_FIELD}.filter") if vector.get("filter") is not None else None
    return k, search_type, parsed


class Retriever:
    """Keeps each knowledge base's store open between requests (stores cache their vectors)."""

    def __init__(self, kbs, *, embedder_for: Callable[[str], Embed]) -> None:
        self.kbs = kbs
        self.embedder_for = embedder_for
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def store(self, kb_id: str):
        kb = self.kbs.get_knowledge_base(kb_id)
        with self._lock:
            store = self._stores.get(kb_id)
            if store is None:
                store = self._stores[kb_id] = self.kbs.open_store(kb)
        return kb, store

    def retrieve(self, kb_id: str, text: str, configuration: dict | None = None) -> list[dict]:
        return [result_of(hit) for hit in self.hits(kb_id, text, configuration)]

    def hits(self, kb_id: str, text: str, configuration: dict | None = None) -> list[Hit]:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_QUERY_CHARS:
            raise InvalidInput(f"retrievalQuery.text must be 1-{MAX_QUERY_CHARS:,} characters", field="retrievalQuery.text")
        k, search_type, parsed = parse_search(configuration)
        kb, store = self.store(kb_id)
        vector = self.embedder_for(kb.embedding_model_id)([text])[0]
        if search_type == "SEMANTIC":
            return store.search(vector, k=k, filter=parsed)
        return hybrid_search(store, vector, text, k=k, filter=parsed)

    def forget(self, kb_id: str) -> None:
        """Close a deleted knowledge base's store."""
        with self._lock:
            store = self._stores.pop(kb_id, None)
        if store is not None:
            store.close()

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()
